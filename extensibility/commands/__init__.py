"""The CLI's commands: one module each, dispatched from `COMMANDS` (as pipx does).

Each module has `add_arguments(parser)` and `main(args, context) -> int`. `run` has a fast
path in cli.py that needs neither argparse nor this table (the container's every start).
"""

from __future__ import annotations

from collections.abc import Mapping

from extensibility.log import Log
from extensibility.settings import Settings

# command -> (module under extensibility.commands, one-line help), in `--help` order
COMMANDS: Mapping[str, tuple[str, str]] = {
    "run": ("run", "prepare the environment and exec the server (the container entrypoint)"),
    "plan": ("plan", "show what a start would do, without installing"),
    "prepare": ("prepare", "build the environment and exit (image build time, init containers)"),
    "lock": ("lock", "write the PEP 751 lock (pylock.toml) of what the request resolves to, "
             "without installing"),
    "wheelhouse": ("wheelhouse", "download every wheel a request needs into a folder, with a "
                   "manifest, for EXTENSIBILITY_WHEELHOUSE (offline deployments)"),
    "doctor": ("doctor", "check the interpreter, installers, cache folder, server command and "
               "request; print a fix for each problem (exit 1 if any)"),
    "push": ("push", "publish the request's environment to the remote cache"),
    "pull": ("pull", "restore the request's environment from the remote cache, without "
             "starting (init containers)"),
    "ls": ("ls", "list the cached environments (--remote: the published ones)"),
    "gc": ("gc", "remove unused environments (least recently used first; --remote: "
           "published ones)"),
}


class Context:
    """What every command gets: the settings (read once), the environment and the log."""

    def __init__(self, settings: Settings, env: Mapping[str, str], log: Log,
                 umask: int = 0o022) -> None:
        self.settings = settings
        self.env = env
        self.log = log
        self.umask = umask  # the one the process was started with, for the server
