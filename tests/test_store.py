"""Store: markers written last, leftovers removed, a real lock between real processes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extensibility.errors import LockTimeout, UnsafeCache
from extensibility.log import Log
from extensibility.store import Store


def fake_env(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)


def test_an_environment_counts_only_once_published(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    assert store.begin("k1") is False
    root = store.env_dir("k1")
    fake_env(root)
    assert store.lookup("k1") is None
    store.publish("k1", "{}", {"request_file": "/app/requirements.txt"})
    assert store.lookup("k1") == root
    [entry] = store.entries()
    assert entry.complete and entry.origin == {"request_file": "/app/requirements.txt"}


def test_begin_removes_a_leftover_and_a_damaged_environment_is_not_used(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.begin("k1")
    root = store.env_dir("k1")
    fake_env(root)
    (root / "half-written").write_text("x")
    assert store.begin("k1") is True  # a leftover was removed
    assert not root.exists()
    fake_env(root)
    store.publish("k1", "{}", {})
    (root / "bin" / "python").unlink()  # marker present, interpreter gone
    assert store.lookup("k1") is None and store.damaged("k1")
    assert not list((tmp_path / "cache" / "envs").glob(".trash-*"))


def test_lock_waits_for_another_process_and_times_out_naming_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.locks.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, filelock\n"
         "lock = filelock.FileLock(sys.argv[1]); lock.acquire()\n"
         "print('locked', flush=True); time.sleep(30)\n",
         str(store.locks / "k1.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        (store.locks / "k1.owner").write_text(
            f'{{"pid": {holder.pid}, "host": "replica-1", "since": {time.time()}}}')
        log = Log(stream=io.StringIO())
        with pytest.raises(LockTimeout, match=f"pid {holder.pid} on replica-1"), \
                store.lock("k1", timeout=0.5, log=log):
            pass
    finally:
        holder.kill()
        holder.wait()
    with store.lock("k1", timeout=5, log=Log(stream=io.StringIO())):
        assert (store.locks / "k1.owner").is_file()
    assert not (store.locks / "k1.owner").exists()


def test_a_cache_others_can_write_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.begin("k1")
    fake_env(store.env_dir("k1"))
    store.publish("k1", "{}", {})
    assert store.lookup("k1") == store.env_dir("k1")
    (tmp_path / "cache").chmod(0o777)
    with pytest.raises(UnsafeCache, match="can be written by other users") as caught:
        store.lookup("k1")
    assert caught.value.exit_code == 92 and "chmod -R go-w" in str(caught.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_an_environment_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.begin("k1")
    fake_env(store.env_dir("k1"))
    store.publish("k1", "{}", {})
    os.chown(store.env_dir("k1"), 65534, 65534)  # planted by another user
    with pytest.raises(UnsafeCache, match="belongs to uid 65534"):
        store.lookup("k1")
