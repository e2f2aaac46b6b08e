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
