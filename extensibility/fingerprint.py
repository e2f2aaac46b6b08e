"""Content fingerprints of local inputs that take part in the cache key."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Build by-products that change without the project changing.
_SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".tox", ".nox", ".venv", "build", "dist",
                 ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_path(path: Path) -> str:
    """A local requirement (wheel, sdist or project folder), by content."""
    if path.is_file():
        return f"sha256={sha256_file(path)}"
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            file_path = Path(root, name)
            relative = file_path.relative_to(path).as_posix()
            # a separator that cannot occur in a path keeps (name, content) pairs unambiguous
            digest.update(f"{relative}\0{sha256_file(file_path)}\n".encode())
    return f"tree-sha256={digest.hexdigest()}"


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
