"""`extensibility pull`: restore the request's environment from the remote cache, without
building or starting anything (an init container: `pull || prepare --publish`)."""

from __future__ import annotations

import argparse

from extensibility.commands import Context
from extensibility.commands.parser import command_argument
from extensibility.commands.run import open_start, server_command
from extensibility.remote.commands import pull, require_remote


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Restore the environment of the deployment's request from "
                          "EXTENSIBILITY_REMOTE_CACHE into the local cache. Exit 91 when it "
                          "is not published, 90 when the remote cache cannot be used.")
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    from extensibility.key import canonical_json
    from extensibility.resolve import resolve

    remote = require_remote(context)
    start = open_start(context, server_command(args.command, context.settings))
    if not start.request.installs:
        context.log.phase("remote", "nothing to pull: the request installs nothing")
        return 0
    from extensibility import warm

    note = warm.note_path(start)
    resolved = resolve(start, context.log)
    pull(remote, start.store, resolved.key, canonical_json(resolved.document),
         start.image.python, context.log, context.settings.lock_timeout)
    warm.remember(resolved, note)  # the server container's `run` is then a warm hit
    context.log.phase("pull", f"ready: {start.store.env_dir(resolved.key)}")
    return 0
