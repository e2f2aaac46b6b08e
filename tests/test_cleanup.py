"""Clean-up selection in-process, on a real store: what goes first, what is never removed.

Locks are real: an environment in use holds its shared in-use lock, one being built its
build lock, as a start does.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from filelock import FileLock

from extensibility.cleanup import Removal, collect, status
from extensibility.store import Store

NOW = 1_000_000_000.0
DAY = 86400.0


def environment(store: Store, key: str, *, used: float, size: int = 0,
                complete: bool = True) -> None:
    store.begin(key)
    root = store.env_dir(key)
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / "payload").write_bytes(b"x" * size)
    if complete:
        store.publish(key, "{}", {"request_file": f"/app/{key}.txt"})
    else:
        store.meta_dir(key).mkdir()
    stamp = store.meta_dir(key) / "last-access"
    stamp.touch()
    os.utime(stamp, (used, used))


def keys(removals: list[Removal]) -> list[str]:
    return [r.key for r in removals]


def test_leftovers_then_age_then_least_recently_used_to_fit_the_budget(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    environment(store, "broken", used=NOW - 1, complete=False)
    environment(store, "ancient", used=NOW - 40 * DAY, size=1 << 20)
    environment(store, "old", used=NOW - 5 * DAY, size=1 << 20)
    environment(store, "recent", used=NOW - 1 * DAY, size=1 << 20)
    environment(store, "fresh", used=NOW - 60, size=1 << 20)
    sizes = {e.key: e.size() for e in store.entries()}
    budget = sizes["recent"] + sizes["fresh"] + sizes["broken"]
    removed, skipped = collect(store, max_age=30 * DAY, max_size=budget, min_idle=600,
                               now=NOW, dry_run=True)
    assert keys(removed) == ["broken", "ancient", "old"]
    assert [r.reason for r in removed][:2] == ["incomplete build",
                                               f"unused for more than {30 * DAY:.0f} s"]
    assert skipped == []
    assert {e.key for e in store.entries()} == set(sizes)  # a dry run removes nothing
    removed, _ = collect(store, max_age=30 * DAY, max_size=budget, min_idle=600, now=NOW)
    assert sorted(e.key for e in store.entries()) == ["fresh", "recent"]


def test_never_in_use_being_built_or_used_within_min_idle(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    for key in ("serving", "building", "idle-ish", "idle"):
        environment(store, key, used=NOW - 10 * DAY)
    environment(store, "just-used", used=NOW - 30)
    descriptor = store.hold("serving")  # a server runs in it
    assert descriptor is not None
    build = FileLock(str(store.build_lock_path("building")))
    build.acquire()
    try:
        by_key = {e.key: status(store, e) for e in store.entries()}
        assert by_key["serving"] == "in use" and by_key["building"] == "building"
        removed, skipped = collect(store, max_age=DAY, max_size=0, min_idle=600, now=NOW)
    finally:
        build.release()
        os.close(descriptor)
    assert sorted(keys(removed)) == ["idle", "idle-ish"]
    reasons = {s.key: s.reason for s in skipped}
    assert reasons["serving"] == "in use or being built"
    assert reasons["building"] == "in use or being built"
    assert reasons["just-used"] == "used recently"


def test_trash_of_an_interrupted_removal_is_cleared(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    environment(store, "kept", used=time.time())
    trash = store.envs / ".trash-dead-1-2"
    (trash / "lib").mkdir(parents=True)
    assert store.trash() == [trash]
    collect(store, max_age=None, max_size=None, min_idle=0)
    assert store.trash() == [] and [e.key for e in store.entries()] == ["kept"]
