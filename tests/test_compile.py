"""Byte-compiling without making the server wait: real builds (uv, offline), a real
low-priority child, a real lock; waits are on events (the marker), never on time."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path

import pytest

import extensibility.commands.run
from extensibility.cli import main
from extensibility.compile import site_folders
from extensibility.store import COMPILED, Store
from tests.support import wait_for
from tests.test_warm import Setup


class Served(BaseException):
    """Raised instead of exec'ing the server (past the CLI's handler, as an exec would)."""


@pytest.fixture
def no_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def served(handoff: object, umask: int | None = None) -> None:
        raise Served

    monkeypatch.setattr(extensibility.commands.run, "execute", served)


def start(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(Served):
        main(["run", "--", "true"], env)
    return capsys.readouterr().err


def pyc_files(environment: Path) -> list[Path]:
    return [p for folder in site_folders(environment) for p in folder.rglob("*.pyc")]


@pytest.mark.usefixtures("no_exec")
def test_run_hands_off_first_and_compiles_in_the_background(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    cold = start(setup.env, capsys)
    assert "--compile-bytecode" not in cold  # the installer did not compile
    assert "byte-compiling" in cold and "in the background" in cold
    [entry] = Store(tmp_path / "cache").entries()
    marker = entry.path / ".extensibility" / COMPILED
    wait_for(marker.exists, 120, "the background compile to finish")
    assert pyc_files(entry.path)
    for cache in (p for f in site_folders(entry.path) for p in f.rglob("__pycache__")):
        assert not stat.S_IMODE(os.lstat(cache).st_mode) & 0o022  # made private by the build
    warm = start(setup.env, capsys)
    assert "(request unchanged" in warm and "byte-compiling" not in warm


@pytest.mark.usefixtures("no_exec")
def test_a_restart_during_the_compile_starts_no_second_one_and_a_killed_one_is_redone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    store = Store(tmp_path / "cache")
    env = {**setup.env, "EXTENSIBILITY_COMPILE": "auto"}
    # a compile already running: the test holds its lock before the first start
    store.locks.mkdir(parents=True, mode=0o700)
    main(["plan", "--json", "--", "true"], env)
    key = json.loads(capsys.readouterr().out)["key"]
    descriptor = os.open(store.compile_lock_path(key), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        cold = start(env, capsys)
        assert "byte-compiling" not in cold  # the running one is left to finish
        restart = start(env, capsys)
        assert "(request unchanged" in restart and "byte-compiling" not in restart
    finally:
        os.close(descriptor)  # as if that compile was killed before its marker
    again = start(env, capsys)
    assert "byte-compiling" in again
    [entry] = store.entries()
    wait_for((entry.path / ".extensibility" / COMPILED).exists, 120, "the compile")


def test_prepare_and_compile_build_compile_while_installing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    assert main(["prepare", "--", "true"], setup.env) == 0
    err = capsys.readouterr().err
    assert "--compile-bytecode" in err
    [entry] = Store(tmp_path / "cache").entries()
    assert (entry.path / ".extensibility" / COMPILED).exists() and pyc_files(entry.path)


def test_the_scoring_scripts_imports_are_compiled_first(tmp_path: Path) -> None:
    from extensibility.compile import imported_packages

    site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    for name in ("numpy", "pandas", "sklearn", "zlib_stuff"):
        (site / name).mkdir(parents=True)
    script = tmp_path / "score.py"
    script.write_text("import json\nimport numpy as np\n\ndef init():\n"
                      "    from sklearn.linear_model import Ridge\n    import pandas\n"
                      "    from . import local\n")
    assert imported_packages(script, tmp_path / "env") == [site / "numpy", site / "sklearn",
                                                            site / "pandas"]
    script.write_text("this is not python (\n")
    assert imported_packages(script, tmp_path / "env") == []


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running (a zombie, reaped by nobody yet, holds nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.usefixtures("no_exec")
def test_a_compile_killed_with_9_leaves_no_worker_and_no_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signal

    from extensibility.store import locked
    from tests.support import Pause

    setup = Setup(tmp_path)
    pause = Pause(tmp_path / "pause", "compile")  # the child is held with its workers running
    monkeypatch.setenv(*next(iter(pause.env.items())))
    cold = start(setup.env, capsys)
    [entry] = Store(tmp_path / "cache").entries()
    lock = Store(tmp_path / "cache").compile_lock_path(entry.path.name)
    paused = tmp_path / "pause" / "paused-compile"
    wait_for(paused.exists, 120, "the compile to be held with its workers")
    pid = int(paused.read_text())
    assert f"(pid {pid}," in cold  # the pid the log names
    workers = children(pid)
    assert workers and locked(lock)
    os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would
    wait_for(lambda: not any(alive(w) for w in workers), 60, "the workers to die with it")
    assert not locked(lock)  # nobody keeps the lock of a dead compile
    monkeypatch.delenv(next(iter(pause.env)))
    again = start(setup.env, capsys)
    assert "byte-compiling" in again  # the next start compiles it
    wait_for((entry.path / ".extensibility" / COMPILED).exists, 120, "the compile")


def test_a_publishers_wait_for_a_compile_is_bounded(tmp_path: Path) -> None:
    from extensibility.compile import CompileTimeout, compile_now

    store = Store(tmp_path / "cache")
    environment = store.env_dir("0123456789abcdef")
    (environment / ".extensibility").mkdir(parents=True)
    store.locks.mkdir(parents=True, mode=0o700)
    descriptor = os.open(store.compile_lock_path(environment.name), os.O_RDWR | os.O_CREAT,
                         0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # a compile that never ends
    try:
        with pytest.raises(CompileTimeout, match="did not finish within 1 s"):
            compile_now(store, environment, timeout=1)
    finally:
        os.close(descriptor)
