"""`extensibility pull`: restore the request's environment from the remote cache, without
building or starting anything (an init container: `pull || prepare --publish`)."""

from __future__ import annotations

import argparse

from extensibility.commands import Context
from extensibility.commands.parser import command_argument
from extensibility.commands.remote_access import open_request
from extensibility.remote.transfer import pull


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Restore the environment of the deployment's request from "
                          "EXTENSIBILITY_REMOTE_CACHE into the local cache. Exit 91 when it "
                          "is not published, 90 when the remote cache cannot be used.")
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    from extensibility import warm
    from extensibility.key import canonical_json

    opened = open_request(args, context, "pull")
    if opened is None:
        return 0
    remote, start, resolved = opened
    pull(remote, start.store, resolved.key, canonical_json(resolved.document),
         start.image.python, context.log, context.settings.lock_timeout)
    warm.remember(resolved, warm.note_path(start))  # the server's `run` is then a warm hit
    context.log.phase("pull", f"ready: {start.store.env_dir(resolved.key)}")
    return 0
