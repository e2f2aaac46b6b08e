"""The shell entrypoint passes its arguments on exactly, in plain POSIX sh (real shell, stub
commands; the end-to-end tests run it against the real entrypoint)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

SCRIPT = REPO / "entrypoint" / "extensibility-entrypoint.sh"


def stub(folder: Path, name: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text('#!/bin/sh\nbasename "$0"\nfor a in "$@"; do echo "[$a]"; done\n')
    path.chmod(0o755)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize(("args", "expected"), [
    ([], ["[run]"]),
    (["azmlinfsrv", "--port", "1 2"], ["[run]", "[--]", "[azmlinfsrv]", "[--port]", "[1 2]"]),
])
def test_arguments_are_passed_on_exactly(tmp_path: Path, args: list[str],
                                         expected: list[str]) -> None:
    stub(tmp_path / "bin", "extensibility")
    result = run(args, {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first == "extensibility" and rest == expected


def test_extensibility_python_is_used_when_set(tmp_path: Path) -> None:
    stub(tmp_path / "bin", "python9")
    result = run(["cmd"], {"PATH": "/usr/bin:/bin",
                           "EXTENSIBILITY_PYTHON": str(tmp_path / "bin" / "python9")})
    assert result.stdout.splitlines()[1:] == ["[-m]", "[extensibility]", "[run]", "[--]", "[cmd]"]


def test_missing_entrypoint_exits_96_with_a_fix() -> None:
    result = run([], {"PATH": "/nonexistent"})
    assert result.returncode == 96
    assert "EXTENSIBILITY_PYTHON" in result.stderr
