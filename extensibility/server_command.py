"""Which module a server command runs: what `server` protection holds depends on it."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence

_SCRIPT_IMPORT_RE = re.compile(rb"^from ([A-Za-z_][\w.]*) import ", re.MULTILINE)


def server_module(command: Sequence[str], path: str) -> str | None:
    """The module a Python console script runs (`from MODULE import main`), if the command
    is one. Cheap: finds the program and reads its first kilobyte, nothing else."""
    program = command[0] if os.sep in command[0] else (
        shutil.which(command[0], path=path)
        or shutil.which(command[0], path=os.path.dirname(sys.executable)))
    if not program:
        return None
    try:
        with open(program, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return None
    match = _SCRIPT_IMPORT_RE.search(head) if head.startswith(b"#!") else None
    return match.group(1).decode() if match else None
