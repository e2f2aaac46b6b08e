"""The runit drop-in and the other image files, run for real in sh with stub programs, and
checked against what the code reads."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from extensibility.settings import SETTINGS
from tests.support import REPO

ENTRYPOINT_FILES = REPO / "entrypoint"
# read by the image files only (documented in docs/variables.md under that heading)
INTEGRATION_ONLY = {"EXTENSIBILITY_FAILURE_DELAY", "EXTENSIBILITY_PYTHON"}


def recorder(folder: Path, name: str, log: Path) -> None:
    """A stub program that records its name, arguments and the port variable it saw."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{name} $* port=${{EXTENSIBILITY_SERVER_PORT:-}}" >> {log}\n')
    path.chmod(0o755)


@pytest.mark.parametrize(("given", "port"), [({}, "31311"), ({"EXTENSIBILITY_SERVER_PORT": "8080"},
                                                             "8080")])
def test_run_starts_the_server_where_the_images_nginx_proxies(
    tmp_path: Path, given: dict[str, str], port: str,
) -> None:
    log = tmp_path / "calls.log"
    recorder(tmp_path, "extensibility-entrypoint", log)
    script = tmp_path / "run"  # the drop-in, pointed at the stub instead of /usr/local/bin
    script.write_text((ENTRYPOINT_FILES / "runit" / "run").read_text().replace(
        "/usr/local/bin/extensibility-entrypoint", str(tmp_path / "extensibility-entrypoint")))
    result = subprocess.run(["/bin/sh", str(script)], env={"PATH": "/usr/bin:/bin", **given},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert log.read_text() == f"extensibility-entrypoint  port={port}\n"


@pytest.mark.parametrize(("code", "delay", "slept"), [
    ("95", None, "45"), ("99", "0", None), ("92", "7", "7"), ("95", "soon", "45"),
    ("0", None, None), ("-1", None, None),
])
def test_finish_names_the_code_and_waits_before_stopping_a_failed_start(
    tmp_path: Path, code: str, delay: str | None, slept: str | None,
) -> None:
    log = tmp_path / "calls.log"
    recorder(tmp_path / "bin", "sleep", log)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    if delay is not None:
        env["EXTENSIBILITY_FAILURE_DELAY"] = delay
    result = subprocess.run(["/bin/sh", str(ENTRYPOINT_FILES / "runit" / "finish"), code, "9"],
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert f"exit code {code}: " in result.stdout
    calls = log.read_text() if log.exists() else ""
    assert calls == (f"sleep {slept} port=\n" if slept else "")


def test_the_image_files_use_only_variables_the_code_reads() -> None:
    known = {s.variable for s in SETTINGS} | INTEGRATION_ONLY
    variables = (REPO / "docs" / "variables.md").read_text()
    for path in sorted(p for p in ENTRYPOINT_FILES.rglob("*") if p.is_file()):
        for name in set(re.findall(r"\b(?:EXTENSIBILITY|AZUREML|AML)_[A-Z_]+\b", path.read_text())):
            assert name in known, f"{path.relative_to(REPO)} uses {name}, which nothing reads"
            assert f"`{name}`" in variables, f"{name} is not documented in docs/variables.md"


def test_the_dockerfile_matches_the_prebuilt_images_layout() -> None:
    dockerfile = (ENTRYPOINT_FILES / "Dockerfile.example").read_text()
    assert "USER dockeruser" in dockerfile  # the images' server user
    assert "/var/runit/gunicorn/" in dockerfile  # the images' runit service of the server
    assert os.access(ENTRYPOINT_FILES / "extensibility-entrypoint.sh", os.X_OK)
    assert "COPY entrypoint/runit/runsvdir-start " in dockerfile  # the first process
    for script in ("run", "finish", "runsvdir-start"):
        assert os.access(ENTRYPOINT_FILES / "runit" / script, os.X_OK)
