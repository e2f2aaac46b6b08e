"""Which module a server command runs: what `server` protection holds depends on it."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

_SCRIPT_IMPORT_RE = re.compile(rb"^from ([A-Za-z_][\w.]*) import ", re.MULTILINE)


def find_program(name: str, path: str, cwd: Path) -> str | None:
    """Where a command's program is: a path (relative to `cwd`), else on `path`, else in the
    image's own scripts folder (an image venv need not be on PATH)."""
    if os.sep in name:
        candidate = name if os.path.isabs(name) else str(cwd / name)
        return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    return which(name, path) or which(name, os.path.dirname(sys.executable))


def which(name: str, path: str) -> str | None:
    """The first executable `name` on the `path` folders (shutil.which without its import
    cost: the warm path needs only this)."""
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder or os.curdir, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def read_head(program: str, size: int = 1024) -> bytes:
    try:
        with open(program, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def server_module(command: Sequence[str], path: str, cwd: Path) -> str | None:
    """The module a Python console script runs (`from MODULE import main`), if the command
    is one. Cheap: finds the program and reads its first kilobyte, nothing else."""
    program = find_program(command[0], path, cwd)
    head = read_head(program) if program else b""
    match = _SCRIPT_IMPORT_RE.search(head) if head.startswith(b"#!") else None
    return match.group(1).decode() if match else None
