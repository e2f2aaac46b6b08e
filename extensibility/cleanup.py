"""Cache clean-up: least-recently-used first, never an environment in use or being built."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from extensibility.store import Entry, Store


@dataclass(frozen=True)
class Removal:
    key: str
    size: int
    reason: str


@dataclass(frozen=True)
class Skip:
    key: str
    reason: str


def status(store: Store, entry: Entry) -> str:
    """complete / in use / building / incomplete: what `extensibility ls` shows."""
    if store.building(entry.key):
        return "building"
    if not entry.complete:
        return "incomplete"
    return "in use" if store.in_use(entry.key) else "complete"


def collect(store: Store, *, max_age: float | None, max_size: int | None, min_idle: float,
            dry_run: bool = False, now: float | None = None) -> tuple[list[Removal], list[Skip]]:
    """Remove leftovers of failed builds, environments unused for `max_age` seconds, then
    least-recently-used ones until the cache fits `max_size` bytes."""
    now = time.time() if now is None else now
    removed: list[Removal] = []
    skipped: list[Skip] = []
    entries = store.entries()
    sizes = {entry.key: entry.size() for entry in entries}
    total = sum(sizes.values())

    def try_remove(entry: Entry, reason: str) -> bool:
        nonlocal total
        if entry.complete and now - (entry.last_access or 0.0) < min_idle:
            skipped.append(Skip(entry.key, "used recently"))
            return False
        with store.exclusive(entry.key) as free:
            if not free:
                skipped.append(Skip(entry.key, "in use or being built"))
                return False
            if not dry_run:
                store.discard(entry.key)
                store.journal(event="removed", key=entry.key, reason=reason)
        removed.append(Removal(entry.key, sizes[entry.key], reason))
        total -= sizes[entry.key]
        return True

    for entry in entries:
        if not entry.complete:
            try_remove(entry, "incomplete build")
    survivors = [e for e in entries if e.complete]
    survivors.sort(key=lambda e: e.last_access or 0.0)  # least recently used first
    if max_age is not None:
        for entry in list(survivors):
            if now - (entry.last_access or 0.0) > max_age and try_remove(
                    entry, f"unused for more than {max_age:.0f} s"):
                survivors.remove(entry)
    if max_size is not None:
        for entry in list(survivors):
            if total <= max_size:
                break
            if try_remove(entry, f"cache over its {max_size} byte budget"):
                survivors.remove(entry)
    if not dry_run:
        for trash in store.trash():
            shutil.rmtree(trash, ignore_errors=True)
    return removed, skipped
