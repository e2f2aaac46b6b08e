"""Content fingerprints of local inputs that take part in the cache key."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from extensibility.inputs import open_regular

# Build by-products that change without the project changing.
_SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".tox", ".nox", ".venv", "build", "dist",
                 ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The digest of a regular file (NotRegular for anything else: never blocks on a FIFO)."""
    digest = hashlib.sha256()
    descriptor = open_regular(path)
    with os.fdopen(descriptor, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_path(path: Path) -> str:
    """A local requirement (wheel, sdist or project folder), by content."""
    if path.is_file():
        return f"sha256={sha256_file(path)}"
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):  # os.walk does not descend into linked folders
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            file_path = Path(root, name)
            relative = file_path.relative_to(path).as_posix()
            # a separator that cannot occur in a path keeps (name, content) pairs unambiguous
            digest.update(f"{relative}\0{_entry_digest(file_path)}\n".encode())
    return f"tree-sha256={digest.hexdigest()}"


def _entry_digest(path: Path) -> str:
    """A file of a project tree by content; a link by its target and a FIFO, device or
    socket by its kind, never opened (reading one would block or never end)."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"link:{os.readlink(path)}"
    if not stat.S_ISREG(info.st_mode):
        return f"special:{stat.S_IFMT(info.st_mode):o}"
    return sha256_file(path)


def fingerprint_wheelhouse(path: Path) -> str:
    """A find-links folder, by the names and sizes of its files.

    Names carry project, version and tags; sizes catch a rebuilt file. Reading every
    wheel's content would cost seconds per start for a large mounted wheelhouse.
    """
    digest = hashlib.sha256()
    entries = sorted((e.name, e.stat().st_size) for e in os.scandir(path) if e.is_file())
    for name, size in entries:
        digest.update(f"{name}\0{size}\n".encode())
    return f"listing-sha256={digest.hexdigest()}"
