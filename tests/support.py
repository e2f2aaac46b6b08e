"""Helpers shared by the tests, the example and the benchmarks (no pytest here)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
IMAGE_WHEELHOUSE = Path(os.environ.get("EXTENSIBILITY_TEST_WHEELHOUSE",
                                       REPO / ".cache" / "image-wheels"))
# Real older releases of the scoring server with their dependencies (`./dev` downloads them)
SERVER_RELEASES = REPO / ".cache" / "server-releases"
# Inherited variables that would make installs depend on this machine, not the test.
_LEAKY_PREFIXES = ("PIP_", "UV_", "EXTENSIBILITY_", "AZUREML_", "AML_", "PYTHON", "CONDA_")


def hermetic_env(tmp: Path, **extra: str) -> dict[str, str]:
    """This machine's environment without its pip/uv configuration (a global pip.conf with
    constraints, PIP_FIND_LINKS and the like would make installs depend on the machine)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_LEAKY_PREFIXES) and k not in ("VIRTUAL_ENV", "SERVER_PORT")}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1", PIP_CACHE_DIR=str(tmp / "pip-cache"),
               UV_CACHE_DIR=str(tmp / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    env.update(extra)
    return env


def complete_envs(cache: Path) -> list[Path]:
    """The environments the store counts as complete (marker present), sorted."""
    from extensibility.store import Store

    return sorted(e.path for e in Store(cache).entries() if e.complete)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass(frozen=True)
class ImageVenv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python3*/site-packages"))




def build_project_wheel(project: Path, folder: Path, tmp: Path) -> Path:
    """Build a local project's wheel into `folder` offline; leaves no build/ behind."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(folder), str(project)], env=hermetic_env(tmp), check=True)
    shutil.rmtree(project / "build", ignore_errors=True)
    return folder


def build_image(root: Path, tmp: Path, *, extra_find_links: Sequence[Path] = (),
                extra_packages: Sequence[str] = (), base_python: str | None = None) -> ImageVenv:
    """A venv standing in for a prebuilt image: this project (with uv) and the real scoring
    server, installed offline from IMAGE_WHEELHOUSE, plus `extra_packages`.

    `base_python` builds it on another interpreter (e.g. the system's), with pip taken from
    the wheelhouse, since such an interpreter may lack ensurepip."""
    env = hermetic_env(tmp)
    own = tmp / "own-wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(own), str(REPO)], env=env, check=True)
    python = root / "bin" / "python"
    if base_python is None:
        subprocess.run([sys.executable, "-m", "venv", str(root)], env=env, check=True)
        pip = [str(python), "-m", "pip"]
    else:
        subprocess.run([base_python, "-m", "venv", "--without-pip", str(root)], env=env,
                       check=True)
        pip_wheel = next(IMAGE_WHEELHOUSE.glob("pip-*.whl"))
        pip = [str(python), str(pip_wheel / "pip")]  # pip runs from its own wheel
    links = [IMAGE_WHEELHOUSE, own, *extra_find_links]
    subprocess.run([*pip, "install", "-q", "--no-index",
                    *(arg for link in links for arg in ("--find-links", str(link))),
                    "inference-extensibility[server,uv,remote]", *extra_packages],
                   env=env, check=True)
    return ImageVenv(root)


@dataclass
class Index:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_index(folder: Path, log: Path, auth: tuple[str, str] | None = None) -> Index:
    """A real package index (pypiserver) on 127.0.0.1 serving only `folder`; with `auth`
    (user, password), listing and downloading need HTTP basic auth."""
    port = free_port()
    server = shutil.which("pypi-server", path=os.path.dirname(sys.executable)) or "pypi-server"
    access = ["-a", ".", "-P", "."]
    if auth is not None:
        from passlib.apache import HtpasswdFile

        passwords = log.with_suffix(".htpasswd")
        table = HtpasswdFile(str(passwords), new=True)
        table.set_password(*auth)
        table.save()
        access = ["-a", "download,list", "-P", str(passwords)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [server, "run", "-p", str(port), "-i", "127.0.0.1", *access,
             "--disable-fallback", "--backend", "simple-dir",
             # gunicorn, not the default wsgiref: wsgiref serves one keep-alive connection
             # at a time, which stalls uv's parallel downloads (11 s instead of 0.5 s for the
             # scoring server's 49 wheels) and would skew every uv timing
             "--server", "gunicorn", str(folder)],
            stdout=out, stderr=subprocess.STDOUT)
    index = Index(f"http://127.0.0.1:{port}/simple/", process, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"pypiserver exited: {log.read_text()}")
        try:
            return requests.get(index.url, timeout=1, auth=auth).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(ready, 30, f"pypiserver at {index.url} (log: {log})")
    except BaseException:
        index.stop()
        raise
    return index


class Pause:
    """Holds a build at a phase through the entrypoint's test-only hook (extensibility/faults.py):
    a deterministic meeting point, no sleeps. `env` goes to the start to hold; `wait` returns
    once it is held there; `release` lets it go on."""

    def __init__(self, folder: Path, phase: str) -> None:
        from extensibility.faults import VARIABLE

        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.phase = folder, phase
        self.env = {VARIABLE: f"{phase}:{folder}"}

    def wait(self, process: subprocess.Popen[str], timeout: float = 300) -> None:
        def held() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the start exited {process.returncode} before it was "
                                     f"held at {self.phase}")
            return (self.folder / f"paused-{self.phase}").exists()

        wait_for(held, timeout, f"the build to be held before {self.phase}")

    def release(self) -> None:
        (self.folder / f"release-{self.phase}").touch()
