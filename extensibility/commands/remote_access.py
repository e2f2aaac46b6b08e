"""What the remote cache's commands share: the store, or a usage error saying how to set it
up; the start and resolved request of `push` and `pull`."""

from __future__ import annotations

from extensibility.commands import Context
from extensibility.errors import UsageError
from extensibility.remote import VARIABLE, open_remote
from extensibility.remote.cache import RemoteCache

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from extensibility.resolve import Resolved
    from extensibility.start import Start


def require_remote(context: Context) -> RemoteCache:
    remote = open_remote(context.settings, context.env, context.log)
    if remote is None:
        raise UsageError(f"no remote cache: {VARIABLE} is not set, or the [remote] extra is not "
                         "installed", fix=f"set {VARIABLE}=https://ACCOUNT.blob.core.windows.net/"
                         "CONTAINER and pip install 'inference-extensibility[remote]'")
    return remote


def open_request(args: argparse.Namespace, context: Context, verb: str
                 ) -> tuple[RemoteCache, Start, Resolved] | None:
    """The remote cache, the start and the resolved request of `push` and `pull` (None: the
    request installs nothing, which is said)."""
    from extensibility.commands.run import open_start, server_command
    from extensibility.resolve import resolve

    remote = require_remote(context)
    start = open_start(context, server_command(args.command, context.settings))
    if not start.request.installs:
        context.log.phase("remote", f"nothing to {verb}: the request installs nothing")
        return None
    return remote, start, resolve(start, context.log)
