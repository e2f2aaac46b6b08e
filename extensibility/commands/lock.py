"""`extensibility lock [-o FILE] [-- COMMAND]`: write the PEP 751 lock of what the request
resolves to, without installing: the resolution a build would make (lockfile/resolution.py),
each file with its URL and hashes from the index. Used as the request, it builds the same
environment without resolving (docs/requirements-files.md#lock-files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from extensibility.commands import Context
from extensibility.commands.parser import command_argument
from extensibility.commands.run import open_start, server_command
from extensibility.errors import UsageError
from extensibility.lockfile import is_lock_file
from extensibility.log import Log
from extensibility.request import CONDA, REQUIREMENTS
from extensibility.start import Start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Write the PEP 751 lock (pylock.toml) of what the request resolves "
                          "to: the packages a build would add to this image, each file with "
                          "its URL and hashes. Nothing is installed. Give the server COMMAND "
                          "`run` gets: its package is what is protected.")
    lock_argument(parser, "-o", "--output",
                  help_text="write the lock to FILE (default: standard output)")
    command_argument(parser)


def lock_argument(parser: argparse.ArgumentParser, *flags: str, help_text: str) -> None:
    parser.add_argument(*flags, type=Path, metavar="FILE", dest="lock_file",
                        help=f"{help_text}; PEP 751 names it pylock.toml or pylock.NAME.toml")


def main(args: argparse.Namespace, context: Context) -> int:
    check_lock_name(args.lock_file)
    start = open_start(context, server_command(args.command, context.settings))
    check_lockable(start)
    from extensibility.lockfile.resolution import request_packages
    from extensibility.resolve import resolve

    resolved = resolve(start, context.log)
    packages = request_packages(start, resolved, context.log)
    deliver(args.lock_file, packages, start, context.log)
    return 0


def check_lock_name(path: Path | None) -> None:
    """A lock must carry a lock's name, or it would not be read as one (request.py)."""
    if path is not None and not is_lock_file(path):
        raise UsageError(f"{path}: a lock file is named pylock.toml or pylock.NAME.toml "
                         "(PEP 751); any other name would be read as a requirements file",
                         fix=f"write it to {path.with_name('pylock.toml')}")


def check_lockable(start: Start) -> None:
    """A requirements file can be locked; say plainly why anything else cannot."""
    request = start.request
    if request.kind == CONDA:
        raise UsageError(f"{request.path} is a conda file: lock files cover pip requests "
                         "only (conda files are out of scope)",
                         fix="lock a requirements file, or keep the conda file as it is")
    if request.kind != REQUIREMENTS:
        raise UsageError(f"nothing to lock: {request.describe()}",
                         fix="set AZUREML_EXTRA_REQUIREMENTS_TXT to the requirements file")
    if request.is_lock:
        raise UsageError(f"{request.path} is a lock file already",
                         fix="commit it as it is; lock the requirements file it was made from "
                         "to update it")


def deliver(path: Path | None, packages: list[dict[str, object]], start: Start,
            log: Log) -> None:
    """The lock to `path` (atomically, read back first), or to standard output."""
    from extensibility.lockfile.write import lock_text, write_lock

    text = lock_text(packages, start.installer, path.absolute().parent if path else None)
    if path is None:
        sys.stdout.write(text)
        return
    write_lock(path.absolute(), text)
    log.phase("lock", f"{path} written: {len(packages)} packages")
