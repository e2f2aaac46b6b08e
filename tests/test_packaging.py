"""The distribution as a user gets it: `python -m build` makes an sdist and a wheel; each
installs into a clean venv offline, and the wheel's entrypoint serves the quickstart."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import StartServer
from tests.support import IMAGE_WHEELHOUSE, REPO, ImageVenv, build_project_wheel, hermetic_env

pytestmark = pytest.mark.slow
NAME = "inference_extensibility"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source") / "tree"  # a clean copy: no build/ leftovers
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".cache", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"))
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                    str(source)], env=hermetic_env(out), check=True, capture_output=True)
    return out


def clean_venv(root: Path, requirement: str) -> ImageVenv:
    env = hermetic_env(root.parent)
    subprocess.run([sys.executable, "-m", "venv", str(root)], env=env, check=True)
    subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
                    "--find-links", str(IMAGE_WHEELHOUSE), requirement], env=env, check=True)
    return ImageVenv(root)


def test_the_sdist_and_the_wheel_hold_what_a_user_needs(dist: Path) -> None:
    wheel = dist / f"{NAME}-0.1.0-py3-none-any.whl"
    sdist = dist / f"{NAME}-0.1.0.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "extensibility/conda/data/pypi_names.tsv" in names
    assert f"{NAME}-0.1.0.dist-info/licenses/LICENSE" in names or \
        f"{NAME}-0.1.0.dist-info/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{NAME}-0.1.0.dist-info/METADATA").decode()
    assert "Name: inference-extensibility" in metadata and "License" in metadata
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "setup.cfg", "extensibility/conda/data/pypi_names.tsv"} \
        <= members


def test_the_wheel_serves_the_quickstart_from_a_clean_venv(
    dist: Path, tmp_path: Path, start_server: StartServer,
) -> None:
    image = clean_venv(tmp_path / "image", f"{dist / NAME}-0.1.0-py3-none-any.whl[server,uv]")
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "quickstart", app, ignore=shutil.ignore_patterns(
        "wheelhouse", "build", "__pycache__"))
    build_project_wheel(app / "packages" / "tinystats", app / "wheelhouse", tmp_path)
    env = hermetic_env(tmp_path, AML_APP_ROOT=str(app), AZUREML_ENTRY_SCRIPT="score.py",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt",
                       EXTENSIBILITY_CACHE_DIR=str(tmp_path / "cache"))
    env["PATH"] = f"{image.bin}:{env['PATH']}"
    server = start_server(image, env)
    assert server.score({"data": [1, 2, 3]}).status_code == 200


def test_the_sdist_installs_from_a_clean_venv(dist: Path, tmp_path: Path) -> None:
    image = clean_venv(tmp_path / "image", str(dist / f"{NAME}-0.1.0.tar.gz"))
    version = subprocess.run([str(image.bin / "extensibility"), "--version"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "extensibility 0.1.0"
