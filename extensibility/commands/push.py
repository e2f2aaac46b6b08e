"""`extensibility push`: publish the current request's environment to the remote cache."""

from __future__ import annotations

import argparse

from extensibility.commands import Context
from extensibility.commands.parser import command_argument
from extensibility.commands.remote_access import open_request
from extensibility.errors import ExtensibilityError
from extensibility.remote.transfer import publish_environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Publish the environment of the deployment's request, built on this "
                          "node, to EXTENSIBILITY_REMOTE_CACHE (unless it is published "
                          "already). Exit 90 when the remote cache cannot be used.")
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    opened = open_request(args, context, "publish")
    if opened is None:
        return 0
    remote, start, resolved = opened
    if start.store.lookup(resolved.key) is None:
        raise ExtensibilityError(f"{resolved.key} is not built on this node "
                                 f"({start.settings.cache_dir})",
                                 fix="build it first (`extensibility prepare`), or use "
                                 "`extensibility prepare --publish`")
    publish_environment(remote, start.store, resolved.key, context.log)
    return 0
