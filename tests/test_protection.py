"""The user's packages must not break the scoring server (real server, both installers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import StartServer, contract_env, run_entrypoint
from tests.support import ImageVenv, Index

pytestmark = pytest.mark.slow
INSTALLERS = ["uv", "pip"]


def env_for(tmp_path: Path, image: ImageVenv, app: Path, cache: Path, index: Index, lines: str,
            **extra: str) -> dict[str, str]:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\n{lines}\n")
    return contract_env(tmp_path, image, app, cache,
                        AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt", **extra)


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_pin_against_the_server_is_refused_naming_both_sides(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    env = env_for(tmp_path, image, app, cache, index, "greeting\ncertifi==2020.1.1",
                  EXTENSIBILITY_INSTALLER=installer)
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    assert f"{app / 'requirements.txt'}:3: 'certifi==2020.1.1'\n" in result.stderr
    assert "azureml-inference-server-http 1.5.1 requires certifi>=2024.7.4" in result.stderr
    assert "EXTENSIBILITY_PROTECT=off" in result.stderr
    assert "running" not in result.stderr  # refused before any install
    assert not list(cache.glob("envs/*"))


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_transitive_conflict_is_refused_with_the_installers_words(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    env = env_for(tmp_path, image, app, cache, index, "needs-old-certifi",
                  EXTENSIBILITY_INSTALLER=installer)
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    assert f"{app / 'requirements.txt'}:2: 'needs-old-certifi'\n" in result.stderr
    assert "certifi is held to " in result.stderr and "the installer said" in result.stderr
    assert not list(cache.glob("envs/*"))


@pytest.mark.parametrize("installer", INSTALLERS)
def test_off_mode_accepts_the_override_with_warnings_and_the_server_still_serves(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
    start_server: StartServer,
) -> None:
    env = env_for(tmp_path, image, app, cache, index, "greeting\ncertifi==2020.1.1",
                  EXTENSIBILITY_INSTALLER=installer, EXTENSIBILITY_PROTECT="off")
    server = start_server(image, env)
    assert server.score({}).json() == {"greeting": "HELLO WORLD"}
    log = server.output()
    assert "WARNING change: certifi " in log and "-> 2020.1.1 (overrides the image)" in log
    assert "WARNING check: azureml-inference-server-http 1.5.1 requires certifi>=2024.7.4" in log


@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unrelated_upgrade_is_allowed_and_shown(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    env = env_for(tmp_path, image, app, cache, index, "framework==2.0",
                  EXTENSIBILITY_INSTALLER=installer)
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 0, result.stderr
    assert "change: framework 1.0 -> 2.0 (overrides the image)" in result.stderr
    assert "check: consistent; the server's app is created" in result.stderr
    plan = json.loads(run_entrypoint(image, env, "plan", "--json").stdout)
    assert plan["changes"] == ["framework 1.0 -> 2.0 (overrides the image)"]
    # flask is held to the ranges its requirers declare, not pinned to the image's version
    assert [line for line in plan["held"] if line.startswith("flask") and "~=3.1.0" in line]
    assert not [line for line in plan["held"] if line.startswith("flask==")]


def test_image_mode_holds_every_image_package(image: ImageVenv, app: Path, cache: Path,
                                              index: Index, tmp_path: Path) -> None:
    env = env_for(tmp_path, image, app, cache, index, "framework==2.0",
                  EXTENSIBILITY_PROTECT="image")
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    assert "framework==1.0 is held: it is part of the image" in result.stderr


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_package_that_breaks_the_server_import_is_caught(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    env = env_for(tmp_path, image, app, cache, index, "breaks-cors",
                  EXTENSIBILITY_INSTALLER=installer)
    result = run_entrypoint(image, env, "run")
    assert result.returncode == 95, result.stderr
    assert "the scoring server cannot start in this environment" in result.stderr
    assert "flask_cors broken on purpose" in result.stderr
    assert not list(cache.glob("envs/*"))


def test_doctor_on_a_healthy_set_up(image: ImageVenv, app: Path, cache: Path, index: Index,
                                    tmp_path: Path) -> None:
    env = env_for(tmp_path, image, app, cache, index, "greeting")
    result = run_entrypoint(image, env, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    items = [line.split()[1].rstrip(":") for line in result.stdout.splitlines()]
    assert items == ["interpreter", "pip", "uv", "installer", "cache", "server", "request"]
    assert "FAIL" not in result.stdout
    assert "module azureml_inference_server_http.amlserver of azureml-inference-server-http" \
        in result.stdout


def test_doctor_names_each_fault_and_its_fix(image: ImageVenv, app: Path, cache: Path,
                                            tmp_path: Path) -> None:
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)  # world-writable: anyone could change what runs
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="missing.txt")
    result = run_entrypoint(image, env, "doctor", "--", "no-such-server")
    assert result.returncode == 1
    failed = {line.split()[1].rstrip(":"): line for line in result.stdout.splitlines()
              if line.startswith("FAIL")}
    assert set(failed) == {"cache", "server", "request"}
    assert "can be written by other users" in failed["cache"]  # the start's own words
    assert result.stdout.count("fix:") == 3
    assert f"chmod -R go-w {cache}" in result.stdout


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_pin_inside_the_servers_range_is_installed_and_serves(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
    start_server: StartServer,
) -> None:
    """What MLflow writes (every package pinned): accepted when the server's own requirement
    (certifi>=2024.7.4) admits the pin, although the image has another version."""
    env = env_for(tmp_path, image, app, cache, index, "greeting\ncertifi==2024.8.30",
                  EXTENSIBILITY_INSTALLER=installer)
    server = start_server(image, env)
    assert server.score({}).json() == {"greeting": "HELLO WORLD"}
    log = server.output()
    assert "-> 2024.8.30 (overrides the image)" in log and "WARNING" not in log


def test_every_conflicting_pin_is_reported_at_once_by_run_plan_and_doctor(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    env = env_for(tmp_path, image, app, cache, index, "greeting\ncertifi==2020.1.1\nflask==1.0")
    run = run_entrypoint(image, env, "run")
    assert run.returncode == 95, run.stderr
    requirements = app / "requirements.txt"
    for text in (f"{requirements}:3: 'certifi==2020.1.1'", f"{requirements}:4: 'flask==1.0'",
                 "2 lines of the request conflict", "requires certifi>=2024.7.4",
                 "requires flask~=3.1.0"):
        assert text in run.stderr
    # only the requirements a pin breaks are cited, never one that admits it
    assert "requires certifi>=2017.4.17" not in run.stderr
    plan = run_entrypoint(image, env, "plan", "--json")
    assert plan.returncode == 95
    summary = json.loads(plan.stdout)
    assert summary["state"] == "refused" and summary["refusal"]["exit_code"] == 95
    assert "flask==1.0" in summary["refusal"]["message"]
    doctor = run_entrypoint(image, env, "doctor")
    assert doctor.returncode == 1
    assert "FAIL  request: 2 lines of the request conflict" in doctor.stdout


@pytest.mark.parametrize("protect", ["off", "server"])
def test_a_server_that_cannot_boot_is_never_published(
    protect: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    """An opentelemetry-sdk the server's app cannot import from: its console-script module
    still imports, its app (loaded lazily by each worker) does not. `off` accepts the
    conflict as a warning, but never a server that cannot start."""
    env = env_for(tmp_path, image, app, cache, index, "opentelemetry-sdk==99.0",
                  EXTENSIBILITY_PROTECT=protect)
    result = run_entrypoint(image, env, "run")
    assert result.returncode == 95, result.stderr
    if protect == "off":
        assert "WARNING check: azureml-inference-server-http 1.5.1 requires " \
            "opentelemetry-sdk==1.33.0" in result.stderr
        assert "the scoring server cannot start in this environment" in result.stderr
        assert "opentelemetry.sdk" in result.stderr  # the probe's own error
        assert "check: consistent" not in result.stderr
    else:
        assert "'opentelemetry-sdk==99.0'" in result.stderr and "running" not in result.stderr
    assert not list(cache.glob("envs/*"))
