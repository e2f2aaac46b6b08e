"""PEP 751 lock files (`pylock.toml`, `pylock.NAME.toml`): read as a request (read.py) and
written from one (resolution.py finds what a build would install, write.py writes it).

This module stays cheap: a start asks `is_lock_file` on the warm path, which must not import
`packaging` or a TOML parser.
"""

from __future__ import annotations

import re
from pathlib import Path

# PEP 751's file names: what makes a request file a lock (the spec reserves them)
_LOCK_NAME_RE = re.compile(r"^pylock\.([^.]+\.)?toml$")


def is_lock_file(path: Path) -> bool:
    """`pylock.toml` or `pylock.NAME.toml` (the names PEP 751 gives lock files)."""
    return _LOCK_NAME_RE.match(path.name) is not None
