"""A container's usual case: a non-root user, a read-only image, no usable HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ImageVenv, build_image, hermetic_env

pytestmark = pytest.mark.slow
SYSTEM_PYTHON = "/usr/bin/python3.11"
USER = "nobody"


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON) or shutil.which("su") is None,
    reason="needs root (to switch to a non-root user) and the system Python")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    # pytest's own temp folders are private to root; the container user must read this one
    folder = Path(tempfile.mkdtemp(prefix="extensibility-unprivileged-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def as_user(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["su", USER, "-s", "/bin/sh", "-c", '"$0" "$@"', "--", *command], env=env,
                          capture_output=True, text=True, timeout=300, check=False, cwd="/")


def image_and_app(packages: Path, shared_tmp: Path) -> tuple[ImageVenv, Path]:
    """An image on the system Python and an app offline from a wheelhouse, both readable by
    the container's user and writable only by root."""
    image = build_image(shared_tmp / "image", shared_tmp / "build", base_python=SYSTEM_PYTHON)
    app = shared_tmp / "app"
    shutil.copytree(packages, app / "wheels")
    (app / "score.py").write_text("")
    (app / "requirements.txt").write_text("--no-index\n--find-links ./wheels\ngreeting\n")
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(shared_tmp)], check=True)
    return image, app


@needs_root
def test_non_root_user_with_read_only_image_and_no_home(packages: Path, shared_tmp: Path) -> None:
    image, app = image_and_app(packages, shared_tmp)
    before = sorted(str(p) for p in image.root.rglob("*"))

    env = hermetic_env(shared_tmp, HOME="/nonexistent", AML_APP_ROOT=str(app),
                       AZUREML_ENTRY_SCRIPT="score.py",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    env.pop("UV_CACHE_DIR")
    env.pop("PIP_CACHE_DIR")
    env["PATH"] = f"{image.bin}:/usr/bin:/bin"
    command = [str(image.bin / "extensibility"), "run", "--", "python", "-c",
               "import greeting, sys; print(greeting.greet('nobody'), sys.prefix)"]
    for _ in range(2):  # cold, then warm
        result = as_user(command, env)
        assert result.returncode == 0, result.stderr
        greeting, prefix = result.stdout.strip().rsplit(" ", 1)
        assert greeting == "HELLO NOBODY"
        assert prefix.startswith("/tmp/azureml-extensibility-")  # HOME unusable: /tmp
    assert ": hit" in result.stderr
    assert sorted(str(p) for p in image.root.rglob("*")) == before  # the image is untouched
    shutil.rmtree(prefix.split("/envs/")[0], ignore_errors=True)


@needs_root
def test_a_cache_prepared_by_root_is_served_by_the_images_user(packages: Path,
                                                              shared_tmp: Path) -> None:
    """`extensibility prepare` at image build time as root (even with umask 077), then the
    image's non-root user, whose HOME is unreadable, starts warm from that read-only cache,
    and lists it."""
    image, app = image_and_app(packages, shared_tmp)
    cache = shared_tmp / "image-cache"
    env = hermetic_env(shared_tmp, HOME="/root", AML_APP_ROOT=str(app),
                       AZUREML_ENTRY_SCRIPT="score.py", EXTENSIBILITY_CACHE_DIR=str(cache),
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    env.pop("UV_CACHE_DIR")
    env.pop("PIP_CACHE_DIR")
    env["PATH"] = f"{image.bin}:/usr/bin:/bin"
    probe = ["python", "-c", "import greeting; print(greeting.greet('user'))"]
    entrypoint = str(image.bin / "extensibility")
    prepared = subprocess.run(["sh", "-c", 'umask 077; exec "$0" "$@"', entrypoint, "prepare",
                               "--", *probe], env=env, capture_output=True, text=True,
                              timeout=300, check=False)
    assert prepared.returncode == 0, prepared.stderr

    served = as_user([entrypoint, "run", "--", *probe], env)  # HOME=/root: unreadable for it
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip() == "HELLO USER"
    assert "(request unchanged" in served.stderr and "Traceback" not in served.stderr
    listed = as_user([entrypoint, "ls", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["status"] == "complete"
