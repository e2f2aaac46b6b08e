"""AZUREML_EXTRA_PYTHON_LIB_PATH: a folder made with `pip install --target` is checked like an
installed request before exec (held packages, the server's boot), once per folder content."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import StartServer, contract_env, run_entrypoint
from tests.support import SERVER_RELEASES, ImageVenv, hermetic_env


def pip_target(folder: Path, links: Path, tmp_path: Path, *requirements: str) -> None:
    """What the platform's docs tell users to do, offline from `links`."""
    if not any(links.glob("*.whl")):
        pytest.fail(f"no wheels at {links}: run `./dev test`, which downloads them once")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(links), "--target", str(folder), *requirements],
                   env=hermetic_env(tmp_path), check=True)


@pytest.mark.parametrize("protect", ["server", "off"])
def test_a_folder_the_server_cannot_run_with_is_refused_before_exec(
    protect: str, image: ImageVenv, app: Path, cache: Path, tmp_path: Path,
) -> None:
    """pydantic 1 in the folder: exec'd, the server's workers would fail to boot (exit 3).
    `server` refuses the package; `off` warns, and the boot check still refuses."""
    libs = app / "libs"
    pip_target(libs, SERVER_RELEASES, tmp_path, "pydantic<2")
    env = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_PYTHON_LIB_PATH="libs",
                       EXTENSIBILITY_PROTECT=protect)
    result = run_entrypoint(image, env, "run")
    assert result.returncode == 95, result.stderr
    assert "exec:" not in result.stderr
    if protect == "server":
        assert f"AZUREML_EXTRA_PYTHON_LIB_PATH folder {libs} holds 1 package" in result.stderr
        assert f"  {libs}: pydantic 1.10." in result.stderr
        assert "azureml-inference-server-http 1.5.1 requires pydantic~=2.12.0" in result.stderr
        assert "fix: remove pydantic from the folder" in result.stderr
    else:
        assert f"WARNING libpath: {libs}: pydantic 1.10." in result.stderr
        assert "the scoring server cannot start with AZUREML_EXTRA_PYTHON_LIB_PATH folder " \
            f"{libs} first on PYTHONPATH (from the folder: pydantic 1.10." in result.stderr
        assert "fix: a package in" in result.stderr
    # a refusal is not remembered: the next start checks again, and refuses again
    again = run_entrypoint(image, env, "run")
    assert again.returncode == 95 and "checked before" not in again.stderr


def test_a_good_folder_serves_and_a_restart_does_not_probe_again(
    image: ImageVenv, app: Path, cache: Path, packages: Path, tmp_path: Path,
    start_server: StartServer,
) -> None:
    libs = app / "libs"
    pip_target(libs, packages, tmp_path, "greeting")
    env = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_PYTHON_LIB_PATH="libs")
    cold = start_server(image, env)
    assert cold.score({}).json() == {"greeting": "HELLO WORLD"}
    assert f"libpath: {libs}: 2 packages, none against what the server needs" in cold.output()
    assert f"libpath: {libs}: the server's app is created" in cold.output()
    cold.process.terminate()
    cold.process.wait(timeout=30)
    warm = start_server(image, env)
    assert warm.score({}).json() == {"greeting": "HELLO WORLD"}
    assert f"libpath: {libs}: checked before (unchanged)" in warm.output()
    assert "app is created" not in warm.output()  # no probe
    warm.process.terminate()
    warm.process.wait(timeout=30)
    # the folder changes (a package added): checked again before the next exec
    pip_target(libs, packages, tmp_path, "hello-cli")
    changed = run_entrypoint(image, env, "run", "--", "true")
    assert changed.returncode == 0, changed.stderr
    assert f"libpath: {libs}: 3 packages" in changed.stderr
    assert not (cache / "envs").exists() or not list((cache / "envs").iterdir())
