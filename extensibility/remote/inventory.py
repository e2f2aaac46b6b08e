"""What the remote cache holds, for `ls --remote`, `gc --remote` and `doctor`: the published
environments, what a clean-up removes, and a probe of the store."""

from __future__ import annotations

import json
import time

from extensibility.remote.backend import Blob, RemoteError
from extensibility.remote.cache import RemoteCache
from extensibility.remote.manifest import archive_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class RemoteEntry:
    """One published environment (or the leftover of an upload that never finished)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.manifest: dict[str, Any] | None = None
        self.blobs: list[Blob] = []

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def modified(self) -> float:
        return max((b.modified for b in self.blobs), default=0.0)

    def strays(self) -> list[Blob]:
        """Archives the manifest does not name (uploads cut short before their manifest)."""
        archive = (self.manifest or {}).get("archive")
        named = archive_name(self.key, str(archive.get("sha256", "")
                                           if isinstance(archive, dict) else ""))
        return [b for b in self.blobs if b.name.endswith(".tar.zst") and b.name != named]

    def row(self) -> dict[str, Any]:
        fields = self.manifest or {}
        builder = fields.get("builder")
        return {"key": self.key, "size": self.size, "published": self.modified,
                "status": "published" if self.manifest else "incomplete",
                "builder": builder.get("host") if isinstance(builder, dict) else None,
                "installer": fields.get("installer")}


class Removal:
    def __init__(self, key: str, blobs: list[Blob], reason: str) -> None:
        self.key, self.blobs, self.reason = key, blobs, reason
        self.size = sum(b.size for b in blobs)


def entries(remote: RemoteCache) -> list[RemoteEntry]:
    """What the remote cache holds, oldest first."""
    try:
        found: dict[str, RemoteEntry] = {}
        for blob in remote.backend.list("envs/"):
            parts = blob.name.split("/")
            if len(parts) != 3:
                continue
            entry = found.setdefault(parts[1], RemoteEntry(parts[1]))
            entry.blobs.append(blob)
            if parts[2] == "manifest.json":
                data = remote.backend.get(blob.name)
                entry.manifest = _json(data[0]) if data else None
        return sorted(found.values(), key=lambda e: e.modified)
    except RemoteError as exc:
        raise remote.unavailable(exc) from None


def _json(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def select(listed: list[RemoteEntry], *, max_age: float | None, max_size: int | None,
           unfinished_after: float) -> list[Removal]:
    """What `gc --remote` removes: uploads that never finished (older than
    `unfinished_after`), published environments older than `max_age`, then the oldest
    until the rest fits `max_size`."""
    now = time.time()
    removals: list[Removal] = []
    kept: list[RemoteEntry] = []
    for entry in listed:  # oldest first
        stale = [b for b in (entry.strays() if entry.manifest else entry.blobs)
                 if now - b.modified > unfinished_after]
        if entry.manifest is None:
            if stale:
                removals.append(Removal(entry.key, entry.blobs, "an upload that never finished"))
            continue
        if stale:
            removals.append(Removal(entry.key, stale, "archives whose upload never finished"))
        if max_age is not None and now - entry.modified > max_age:
            days = (now - entry.modified) / 86400
            removals.append(Removal(entry.key, entry.blobs, f"published {days:.1f} days ago"))
        else:
            kept.append(entry)
    total = sum(e.size for e in kept)
    for entry in kept:
        if max_size is None or total <= max_size:
            break
        removals.append(Removal(entry.key, entry.blobs, "the remote cache is over --max-size"))
        total -= entry.size
    return removals


def remove(remote: RemoteCache, removal: Removal) -> None:
    """The manifest first: a reader never finds a manifest whose archive is gone."""
    try:
        for blob in sorted(removal.blobs, key=lambda b: not b.name.endswith("manifest.json")):
            remote.backend.delete(blob.name)
    except RemoteError as exc:
        raise remote.unavailable(exc) from None


def probe(remote: RemoteCache) -> str:
    """Reachable, authorised, writable: list, then write, read back and delete a blob.
    Raises RemoteError at the first step that fails."""
    import os
    import socket

    backend = remote.backend
    published_count = sum(b.name.endswith("/manifest.json") for b in backend.list("envs/"))
    name = f"doctor/{socket.gethostname()}-{os.getpid()}"
    backend.put(name, b"doctor")
    found = backend.get(name)
    backend.delete(name)
    if found is None or found[0] != b"doctor":
        raise RemoteError("a blob written could not be read back")
    credential = getattr(backend, "credential_source", "")
    return (f"{backend.description}: reachable, authorised ({credential}), writable; "
            f"{published_count} published environments")
