"""Requests that name the scoring server's own package, against real releases of it.

The index serves real older releases from PyPI (1.5.0, 1.4.1, 1.3.4) with their real
dependencies (`releases_index`); the image has 1.5.1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from extensibility.consistency import needed_by, new_problems
from tests.conftest import StartServer, contract_env, run_entrypoint
from tests.support import ImageVenv, Index, hermetic_env
from tests.wheels import build_wheel

pytestmark = pytest.mark.slow
INSTALLERS = ["uv", "pip"]
SERVER = "azureml-inference-server-http"
MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


def packages_line(log: str) -> str:
    """The start's `packages:` line: what the environment holds besides the image."""
    return next(line for line in log.splitlines() if " packages: " in line and " | " not in line)


def mlflow_conda_file(app: Path, *pip_lines: str) -> str:
    """What MLflow writes beside a model: the server listed without a version."""
    lines = "".join(f"  - {line}\n" for line in pip_lines)
    (app / "conda.yaml").write_text(f"channels:\n- conda-forge\ndependencies:\n"
                                    f"- python={MINOR}.1\n- pip<=23.2.1\n- pip:\n{lines}"
                                    "name: mlflow-env\n")
    return "conda.yaml"


def request_env(kind: str, tmp_path: Path, image: ImageVenv, app: Path, cache: Path,
                index: Index, lines: list[str], **extra: str) -> dict[str, str]:
    if kind == "conda":
        variable = {"AZUREML_EXTRA_CONDA_YAML": mlflow_conda_file(app, *lines)}
    else:
        (app / "requirements.txt").write_text("".join(f"{line}\n" for line in lines))
        variable = {"AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt"}
    return contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=index.url, **variable,
                        **extra)


@pytest.mark.parametrize("kind", ["requirements", "conda"])
@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unpinned_mention_of_the_server_keeps_it_held(
    installer: str, kind: str, image: ImageVenv, app: Path, cache: Path, releases_index: Index,
    tmp_path: Path, start_server: StartServer,
) -> None:
    """The index offers 1.5.0 and older: an unpinned line changes nothing, cold or warm."""
    env = request_env(kind, tmp_path, image, app, cache, releases_index, ["greeting", SERVER],
                      EXTENSIBILITY_INSTALLER=installer)
    for start in ("cold", "warm"):
        server = start_server(image, env)
        assert server.score({}).json() == {"greeting": "HELLO WORLD"}
        log = server.output()
        assert "is replaced as the request asks" not in log
        assert "(overrides the image)" not in log
        if start == "cold":
            assert f"protect: server: {SERVER} at its version" in log
        else:
            assert "(request unchanged, installer" in log and "running" not in log
        assert "greeting==1.0" in packages_line(log) and SERVER not in packages_line(log)
        server.process.terminate()
        server.process.wait(timeout=30)


@pytest.mark.parametrize("installer", INSTALLERS)
def test_an_unpinned_server_beside_a_pin_it_cannot_take_is_refused_not_downgraded(
    installer: str, image: ImageVenv, app: Path, cache: Path, releases_index: Index,
    tmp_path: Path,
) -> None:
    """MLflow pins pydantic to what the training machine had; 1.5.1 needs pydantic~=2.12.0.
    Replacing the server would let the resolver fall back to 1.5.0 (pydantic~=2.11.0) in
    silence: the pin is refused instead, at its line."""
    env = request_env("conda", tmp_path, image, app, cache, releases_index,
                      [SERVER, "pydantic==2.11.10", "greeting"],
                      EXTENSIBILITY_INSTALLER=installer)
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    assert f"{app / 'conda.yaml'}:8: 'pydantic==2.11.10'" in result.stderr
    assert f"{SERVER} 1.5.1 requires pydantic~=2.12.0" in result.stderr
    assert "running" not in result.stderr  # refused before any install
    assert not list(cache.glob("envs/*"))


@pytest.mark.parametrize("release", ["1.4.1", "1.3.4"])
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_real_older_server_release_replaces_the_image_one_and_serves(
    installer: str, release: str, image: ImageVenv, app: Path, cache: Path,
    releases_index: Index, tmp_path: Path, start_server: StartServer,
) -> None:
    """A published sample pins an older server. Its dependencies differ from 1.5.1's
    (1.4.1: opencensus, whose google-api-core needs a newer opentelemetry-api than the
    image's opentelemetry-sdk 1.33.0 accepts; 1.3.4: flask 2.3, pydantic 2.9): what only
    1.5.1 needed is left in the image, noted, and does not decide; the boot check does."""
    env = request_env("requirements", tmp_path, image, app, cache, releases_index,
                      ["greeting", f"{SERVER}=={release}"], EXTENSIBILITY_INSTALLER=installer)
    cold = start_server(image, env)
    assert cold.score({}).json() == {"greeting": "HELLO WORLD"}
    log = cold.output()
    assert f"{SERVER} 1.5.1 is replaced as the request asks" in log
    assert f"{SERVER} 1.5.1 -> {release} (overrides the image)" in log
    assert "check: note: " in log and "neither the new server nor the request needs it" in log
    assert f"check: consistent for what the new {SERVER} and the request need" in log
    assert "the server's app is created" in log
    cold.process.terminate()
    cold.process.wait(timeout=30)
    warm = start_server(image, env)
    assert warm.score({}).json() == {"greeting": "HELLO WORLD"}
    log = warm.output()
    assert "(request unchanged, installer" in log and "running" not in log
    assert f"{SERVER}=={release}" in packages_line(log)


def test_the_scope_counts_what_the_new_server_needs_and_notes_the_rest(
    tmp_path: Path,
) -> None:
    """Over real installed folders: a broken requirement of a package the new server needs
    (transitively) counts; one of a package only the old server needed is a note."""
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "new-server", "1.0", requires=["helper"])
    build_wheel(wheels, "helper", "1.0", requires=["shared>=2"])
    build_wheel(wheels, "leftover", "1.0", requires=["shared==1"])
    build_wheel(wheels, "shared", "1.0")
    image_site, overlay_site = tmp_path / "image", tmp_path / "overlay"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--find-links", str(wheels), "--target"]
    subprocess.run([*install, str(image_site), "leftover", "shared==1.0"],
                   env=hermetic_env(tmp_path), check=True)
    subprocess.run([*install, str(overlay_site), "new-server", "helper"],
                   env=hermetic_env(tmp_path), check=True)
    paths = [str(overlay_site), str(image_site)]
    scope = needed_by(paths, ["new-server"])
    assert scope == {"new-server", "helper", "shared"}
    counted, noted = new_problems(paths, [str(image_site)], scope)
    assert counted == ["helper 1.0 requires shared>=2, but shared 1.0 is installed"]
    assert noted == []
    build_wheel(wheels, "shared", "2.0")
    subprocess.run([*install, str(overlay_site), "shared==2.0"], env=hermetic_env(tmp_path),
                   check=True)
    counted, noted = new_problems(paths, [str(image_site)], needed_by(paths, ["new-server"]))
    assert counted == []
    assert noted == ["leftover 1.0 requires shared==1, but shared 2.0 is installed"]
    # without a replacement everything counts, as before
    assert new_problems(paths, [str(image_site)]) == (noted, [])
