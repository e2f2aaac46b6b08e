"""EXTENSIBILITY_WHEELHOUSE: a network-isolated start with only a folder of wheels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import StartServer, contract_env, run_entrypoint
from tests.support import ImageVenv

pytestmark = pytest.mark.slow
CLOSED = "http://127.0.0.1:9/simple/"  # nothing listens there: any index use would fail


def wheelhouse(packages: Path, app: Path, *names: str) -> None:
    (app / "wheels").mkdir()
    for name in names:
        for wheel in packages.glob(f"{name}-*.whl"):
            shutil.copy(wheel, app / "wheels")


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_an_isolated_start_serves_from_the_wheelhouse_alone(
    installer: str, image: ImageVenv, app: Path, cache: Path, packages: Path, tmp_path: Path,
    start_server: StartServer,
) -> None:
    wheelhouse(packages, app, "greeting", "tinydep")
    (app / "requirements.txt").write_text(f"--index-url {CLOSED}\n--extra-index-url {CLOSED}\n"
                                          "greeting\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_WHEELHOUSE="wheels",
                       EXTENSIBILITY_INSTALLER=installer, PIP_INDEX_URL=CLOSED,
                       UV_INDEX_URL=CLOSED, AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    server = start_server(image, env)
    assert server.score({}).json() == {"greeting": "HELLO WORLD"}
    assert "127.0.0.1:9" not in server.output()  # no installer was given the index


def test_a_missing_wheel_fails_fast_naming_it_and_the_accepted_tags(
    image: ImageVenv, app: Path, cache: Path, packages: Path, tmp_path: Path,
) -> None:
    wheelhouse(packages, app, "greeting")  # tinydep, a dependency, is missing
    (app / "requirements.txt").write_text("greeting\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_WHEELHOUSE="wheels",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "true", timeout=60)
    assert result.returncode == 95, result.stderr
    assert "tinydep" in result.stderr
    assert "accepts wheels tagged cp3" in result.stderr and "py3-none-any" in result.stderr
    assert not list(cache.glob("envs/*"))


def test_the_wheelhouse_contents_are_part_of_the_key(
    image: ImageVenv, app: Path, cache: Path, packages: Path, tmp_path: Path,
) -> None:
    wheelhouse(packages, app, "greeting", "tinydep")
    (app / "requirements.txt").write_text("greeting\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_WHEELHOUSE=str(app / "wheels"),
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    assert run_entrypoint(image, env, "prepare", "--", "true").returncode == 0
    shutil.copy(next(packages.glob("hello_cli-*.whl")), app / "wheels")
    changed = run_entrypoint(image, env, "plan", "--", "true")
    assert "miss" in changed.stdout and "request" in changed.stdout
