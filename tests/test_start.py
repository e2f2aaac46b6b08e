"""A real cold start in-process (uv or pip, offline from a find-links folder): every input is
computed once, and the restart takes the warm path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import extensibility.image
import extensibility.requirements
import extensibility.resolve
import extensibility.start
from extensibility.cli import main
from extensibility.store import Store
from tests.test_warm import Setup


def counting(monkeypatch: pytest.MonkeyPatch, counts: Counter[str], module: object,
             name: str, key: Callable[..., str] | None = None) -> None:
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counts[key(*args) if key else name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def test_a_cold_start_computes_each_input_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Setup(tmp_path)
    counts: Counter[str] = Counter()
    image_dirs = set(extensibility.image.current_image().site_dirs)
    counting(monkeypatch, counts, extensibility.image, "scan_distributions",
             lambda directory: f"scan {directory}" if directory in image_dirs else "other")
    for name in ("installer_settings", "choose_installer", "server_module"):
        counting(monkeypatch, counts, extensibility.start, name)
    counting(monkeypatch, counts, extensibility.resolve, "resolve_protection")
    request = setup.app / "requirements.txt"
    for module in (extensibility.start, extensibility.requirements):
        counting(monkeypatch, counts, module, "read_request_file",
                 lambda path, what: f"read {path.name}")
    assert main(["prepare", "--", "true"], setup.env) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "complete" in err and "miss" in err
    once = {f"scan {d}" for d in image_dirs} | {
        "installer_settings", "choose_installer", "server_module", "resolve_protection",
        f"read {request.name}", "read base.txt"}
    assert {name: counts[name] for name in once} == dict.fromkeys(once, 1), counts
    [entry] = Store(tmp_path / "cache").entries()
    assert entry.complete and (entry.path / "bin" / "python").exists()

    counts.clear()
    assert main(["prepare", "--", "true"], setup.env) == 0
    assert "(request unchanged" in capsys.readouterr().err
    assert counts["resolve_protection"] == 0 and counts[f"read {request.name}"] == 1
