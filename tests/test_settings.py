"""Settings: defaults, sources, validation, and every variable documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from extensibility.errors import SettingsError
from extensibility.request import LIB_PATH, NONE, REQUIREMENTS, resolve_request
from extensibility.settings import SETTINGS, Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_defaults_and_sources(tmp_path: Path) -> None:
    settings = Settings.from_environ({"HOME": str(tmp_path), "EXTENSIBILITY_INSTALLER": "pip"})
    assert settings.app_root == Path("/var/azureml-app")
    assert settings.entry_script == "main.py"
    assert settings.cache_dir == tmp_path / ".cache" / "azureml-extensibility"
    assert settings.installer == "pip"
    assert settings.sources["installer"] == "EXTENSIBILITY_INSTALLER"
    assert settings.sources["lock_timeout"] == "default" and settings.lock_timeout == 1800
    assert settings.server_port == 5001


def test_cache_falls_back_to_tmp_without_a_usable_home(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    settings = Settings.from_environ({"HOME": str(not_a_folder)})
    assert str(settings.cache_dir).startswith("/tmp/azureml-extensibility-")


@pytest.mark.parametrize(("variable", "value"), [
    ("EXTENSIBILITY_INSTALLER", "conda"), ("EXTENSIBILITY_LOG_FORMAT", "xml"),
    ("EXTENSIBILITY_LOCK_TIMEOUT", "soon"), ("EXTENSIBILITY_SERVER_PORT", "70000"),
])
def test_invalid_values_are_refused_by_name(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as caught:
        Settings.from_environ({variable: value})
    assert caught.value.exit_code == 93


def test_precedence_first_set_wins(tmp_path: Path) -> None:
    (tmp_path / "libs").mkdir()
    (tmp_path / "requirements.txt").write_text("x\n")
    env = {"AML_APP_ROOT": str(tmp_path), "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt"}
    assert resolve_request(Settings.from_environ({})).kind == NONE
    assert resolve_request(Settings.from_environ(env)).kind == REQUIREMENTS
    both = resolve_request(Settings.from_environ({**env, "AZUREML_EXTRA_PYTHON_LIB_PATH": "libs"}))
    assert both.kind == LIB_PATH and both.ignored == ("AZUREML_EXTRA_REQUIREMENTS_TXT",)


def test_requirements_path_is_relative_to_the_entry_script_folder(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "requirements.txt").write_text("x\n")
    request = resolve_request(Settings.from_environ({
        "AML_APP_ROOT": str(tmp_path), "AZUREML_ENTRY_SCRIPT": "src/score.py",
        "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt"}))
    assert request.path == tmp_path / "src" / "requirements.txt"
    absolute = resolve_request(Settings.from_environ({
        "AML_APP_ROOT": "/elsewhere",
        "AZUREML_EXTRA_REQUIREMENTS_TXT": str(tmp_path / "src" / "requirements.txt")}))
    assert absolute.path == tmp_path / "src" / "requirements.txt"


def test_every_variable_and_exit_code_is_documented() -> None:
    variables = (DOCS / "variables.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.variable}`" in variables, setting.variable
    exit_codes = (DOCS / "exit-codes.md").read_text()
    for code in (99, 98, 97, 96, 95, 94, 93, 92, 143):
        assert re.search(rf"\b{code}\b", exit_codes), code


@pytest.mark.parametrize("url", [
    "s3://bucket/prefix", "https://account.blob.core.windows.net", "https://account.blob."
    "core.windows.net/?sv=1&sig=SECRET", "not a url", "https:///container",
])
def test_a_malformed_remote_cache_url_is_refused_without_its_query(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_environ({"EXTENSIBILITY_REMOTE_CACHE": url})
    assert refused.value.exit_code == 93 and "SECRET" not in str(refused.value)


@pytest.mark.parametrize("url", [
    "https://account.blob.core.windows.net/container",
    "https://account.blob.core.windows.net/container/deep/prefix?sv=1&sig=x",
    "http://127.0.0.1:10000/devstoreaccount1/container",
])
def test_a_container_url_is_accepted(url: str) -> None:
    assert Settings.from_environ({"EXTENSIBILITY_REMOTE_CACHE": url}).remote_cache == url
