"""A container's usual case: a non-root user, a read-only image, no usable HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import build_image, hermetic_env

pytestmark = pytest.mark.slow
SYSTEM_PYTHON = "/usr/bin/python3.11"
USER = "nobody"


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    # pytest's own temp folders are private to root; the container user must read this one
    folder = Path(tempfile.mkdtemp(prefix="extensibility-unprivileged-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON)
                    or shutil.which("su") is None,
                    reason="needs root (to switch to a non-root user) and the system Python")
def test_non_root_user_with_read_only_image_and_no_home(packages: Path, shared_tmp: Path) -> None:
    image = build_image(shared_tmp / "image", shared_tmp / "build", base_python=SYSTEM_PYTHON)
    app = shared_tmp / "app"
    shutil.copytree(packages, app / "wheels")
    (app / "score.py").write_text("")
    (app / "requirements.txt").write_text("--no-index\n--find-links ./wheels\ngreeting\n")
    subprocess.run(["chmod", "-R", "a+rX,go-w", str(shared_tmp)], check=True)
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
        result = subprocess.run(["su", USER, "-s", "/bin/sh", "-c", '"$0" "$@"', *command],
                                env=env, capture_output=True, text=True, timeout=300,
                                check=False, cwd="/")
        assert result.returncode == 0, result.stderr
        greeting, prefix = result.stdout.strip().rsplit(" ", 1)
        assert greeting == "HELLO NOBODY"
        assert prefix.startswith("/tmp/azureml-extensibility-")  # HOME unusable: /tmp
    assert ": hit" in result.stderr
    assert sorted(str(p) for p in image.root.rglob("*")) == before  # the image is untouched
    shutil.rmtree(prefix.split("/envs/")[0], ignore_errors=True)
