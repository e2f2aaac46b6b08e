"""The final argv and environment: overlay first, Python scripts run by the overlay."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from extensibility.errors import ServerNotFound
from extensibility.handoff import default_command, prepare_handoff
from extensibility.settings import Settings


def settings_for(app: Path, **extra: str) -> Settings:
    return Settings.from_environ({"AML_APP_ROOT": str(app), "AZUREML_ENTRY_SCRIPT": "score.py",
                                  "HOME": str(app), **extra})


def script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_default_command_is_the_prebuilt_images_server(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, AZUREML_MODEL_DIR="/models", EXTENSIBILITY_SERVER_PORT="8080")
    assert default_command(settings) == ["azmlinfsrv", "--entry_script", "score.py",
                                         "--port", "8080", "--model_dir", "/models"]


@pytest.mark.parametrize("shebang", [
    "#!/image/bin/python3.11\n",
    "#!/bin/sh\n'''exec' \"/a/very/long/image/bin/python\" \"$0\" \"$@\"\n' '''\n",
])
def test_an_image_python_script_is_run_by_the_overlay(tmp_path: Path, shebang: str) -> None:
    image_bin, overlay = tmp_path / "image-bin", tmp_path / "overlay"
    server = script(image_bin, "server", shebang + "print('hi')\n")
    handoff = prepare_handoff(settings_for(tmp_path), ["server", "--flag"],
                           {"PATH": str(image_bin)}, overlay, None)
    python = str(overlay / "bin" / "python")
    assert handoff.program == python
    assert handoff.argv == (python, str(server), "--flag")
    assert handoff.env["PATH"].split(os.pathsep) == [str(overlay / "bin"), str(image_bin)]
    assert handoff.env["VIRTUAL_ENV"] == str(overlay)
    assert handoff.cwd == tmp_path


@pytest.mark.parametrize("text", ["#!/bin/sh\necho hi\n", "#!/usr/bin/env python3\nprint(1)\n"])
def test_other_programs_are_exec_ed_as_they_are(tmp_path: Path, text: str) -> None:
    program = script(tmp_path / "bin", "tool", text)
    handoff = prepare_handoff(settings_for(tmp_path), ["tool"], {"PATH": str(tmp_path / "bin")},
                           tmp_path / "overlay", None)
    assert handoff.program == str(program) and handoff.argv == ("tool",)


def test_lib_path_is_prepended_to_pythonpath(tmp_path: Path) -> None:
    script(tmp_path / "bin", "tool", "#!/bin/sh\n")
    handoff = prepare_handoff(settings_for(tmp_path), ["tool"],
                           {"PATH": str(tmp_path / "bin"), "PYTHONPATH": "/existing"},
                           None, tmp_path / "libs")
    assert handoff.env["PYTHONPATH"] == f"{tmp_path / 'libs'}{os.pathsep}/existing"
    assert "VIRTUAL_ENV" not in handoff.env


def test_a_missing_default_server_says_how_to_fix_it(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the image's scripts folder (next to its python) is searched too: make it empty
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ServerNotFound) as caught:
        prepare_handoff(settings_for(tmp_path), None, {"PATH": str(tmp_path)}, None, None)
    assert caught.value.exit_code == 96
    assert caught.value.fix is not None and "azureml-inference-server-http" in caught.value.fix
