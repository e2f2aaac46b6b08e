"""`extensibility wheelhouse` and `prepare --target`: build offline inputs ahead of time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import contract_env, run_entrypoint
from tests.support import ImageVenv, Index, hermetic_env, start_index
from tests.wheels import build_wheel

pytestmark = pytest.mark.slow


def test_wheelhouse_then_an_offline_start(image: ImageVenv, app: Path, cache: Path, index: Index,
                                          tmp_path: Path) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache)
    made = run_entrypoint(image, env, "wheelhouse", "-r", str(app / "requirements.txt"),
                          "-o", str(app / "wheels"))
    assert made.returncode == 0, made.stderr
    manifest = json.loads((app / "wheels" / "wheelhouse.json").read_text())
    assert {w["name"] for w in manifest["wheels"]} == {"greeting", "tinydep"}
    assert all(len(w["sha256"]) == 64 for w in manifest["wheels"])

    index.process.send_signal(0)  # the index still runs: the offline start must not use it
    (app / "requirements.txt").write_text("--index-url http://127.0.0.1:9/simple/\ngreeting\n")
    offline = run_entrypoint(image, {**env, "EXTENSIBILITY_WHEELHOUSE": "wheels",
                                     "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt"},
                             "run", "--", "python", "-c", "import greeting")
    assert offline.returncode == 0, offline.stderr


def test_cross_target_download_is_checked_by_its_tags(image: ImageVenv, tmp_path: Path) -> None:
    folder = tmp_path / "platform-wheels"
    build_wheel(folder, "fastlib", "1.0", tag="cp312-cp312-manylinux_2_17_aarch64")
    build_wheel(folder, "fastlib", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    served = start_index(folder, tmp_path / "index.log")
    try:
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(f"--index-url {served.url}\nfastlib==1.0\n")
        result = run_entrypoint(image, hermetic_env(tmp_path), "wheelhouse", "-r",
                                str(requirements), "-o", str(tmp_path / "out"),
                                "--python-version", "3.12", "--platform",
                                "manylinux_2_17_aarch64", "--abi", "cp312",
                                "--implementation", "cp")
    finally:
        served.stop()
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "wheelhouse.json").read_text())
    assert [w["tags"] for w in manifest["wheels"]] == [["cp312-cp312-manylinux_2_17_aarch64"]]
    assert manifest["target"]["platforms"] == ["manylinux_2_17_aarch64"]


def test_source_only_packages_are_refused_without_build_sdists(
    image: ImageVenv, tmp_path: Path,
) -> None:
    folder = tmp_path / "sdists"
    folder.mkdir()
    (folder / "onlysource-1.0.tar.gz").write_bytes(b"not really an sdist")
    served = start_index(folder, tmp_path / "index.log")
    try:
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(f"--index-url {served.url}\nonlysource\n")
        result = run_entrypoint(image, hermetic_env(tmp_path), "wheelhouse", "-r",
                                str(requirements), "-o", str(tmp_path / "out"))
    finally:
        served.stop()
    assert result.returncode == 95, result.stderr
    assert "onlysource" in result.stderr and "--build-sdists" in result.stderr


def test_prepare_target_makes_a_lib_path_folder(image: ImageVenv, app: Path, cache: Path,
                                                index: Index, tmp_path: Path) -> None:
    (app / "extra.txt").write_text(f"--index-url {index.url}\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache)
    made = run_entrypoint(image, env, "prepare", "--target", str(app / "libs"), "-r",
                          str(app / "extra.txt"))
    assert made.returncode == 0, made.stderr
    result = run_entrypoint(image, {**env, "AZUREML_EXTRA_PYTHON_LIB_PATH": "libs"}, "run",
                            "--", "python", "-c", "import greeting; print(greeting.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(app / "libs"))
