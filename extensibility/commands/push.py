"""`extensibility push`: publish the current request's environment to the remote cache."""

from __future__ import annotations

import argparse

from extensibility.commands import Context
from extensibility.commands.parser import command_argument
from extensibility.commands.run import open_start, server_command
from extensibility.errors import ExtensibilityError
from extensibility.remote.commands import publish_environment, require_remote


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Publish the environment of the deployment's request, built on this "
                          "node, to EXTENSIBILITY_REMOTE_CACHE (unless it is published "
                          "already). Exit 90 when the remote cache cannot be used.")
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    from extensibility.resolve import resolve

    remote = require_remote(context)
    start = open_start(context, server_command(args.command, context.settings))
    if not start.request.installs:
        context.log.phase("remote", "nothing to publish: the request installs nothing")
        return 0
    resolved = resolve(start, context.log)
    if start.store.lookup(resolved.key) is None:
        raise ExtensibilityError(f"{resolved.key} is not built on this node "
                                 f"({start.settings.cache_dir})",
                                 fix="build it first (`extensibility prepare`), or use "
                                 "`extensibility prepare --publish`")
    publish_environment(remote, start.store, resolved.key, context.log)
    return 0
