"""Hermetic fixtures: tiny wheels, a real local index on 127.0.0.1, a simulated image venv.

Nothing here reaches the internet. The simulated image is built offline from
`.cache/image-wheels` (filled by `./dev test`, the only step that talks to PyPI).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import requests

from tests.support import (
    IMAGE_WHEELHOUSE,
    SERVER_RELEASES,
    ImageVenv,
    Index,
    build_image,
    free_port,
    hermetic_env,
    start_index,
    wait_for,
)
from tests.wheels import build_wheel

pytest_plugins = ["tests.azurite"]  # the Azure Storage emulator: `azurite`, `container`


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the simulated image (and so the image wheels `./dev` downloads)
    is `slow`, marked here so none is missed: `pytest -m "not slow"` runs without those wheels
    (the remote-cache tests still need the storage emulator, which `./dev` installs too)."""
    for item in items:
        if "image" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


# --- packages -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test packages, as real wheels in one folder (served by `index`, or as find-links)."""
    folder = tmp_path_factory.mktemp("packages")
    build_wheel(folder, "tinydep", "1.0",
                modules={"tinydep/__init__.py": "def shout(text):\n    return text.upper()\n"})
    build_wheel(folder, "greeting", "1.0", requires=["tinydep>=1"], modules={
        "greeting/__init__.py":
            "import tinydep\n\ndef greet(name):\n    return tinydep.shout(f'hello {name}')\n"})
    build_wheel(folder, "hello-cli", "1.0", console_scripts={"hello-cli": "hello_cli:main"},
                modules={"hello_cli/__init__.py":
                         "import sys\n\ndef main():\n    print('hello from', sys.prefix)\n"})
    # the image has framework 1.0; the index also offers 2.0, which must not be installed
    # when a request only needs framework>=1
    build_wheel(folder, "framework", "1.0")
    build_wheel(folder, "framework", "2.0")
    build_wheel(folder, "needs-framework", "1.0", requires=["framework>=1.0"])
    # against the scoring server (it requires certifi>=2024.7.4): an old certifi that still
    # imports, a package needing it, and one that shadows a module the server imports
    build_wheel(folder, "certifi", "2020.1.1", modules={
        "certifi/__init__.py": "def where():\n    return '/etc/ssl/certs/ca-certificates.crt'\n"})
    build_wheel(folder, "needs-old-certifi", "1.0", requires=["certifi<2021"])
    # inside the server's range (certifi>=2024.7.4) but not the image's version: a user's pin
    build_wheel(folder, "certifi", "2024.8.30", modules={
        "certifi/__init__.py": "def where():\n    return '/etc/ssl/certs/ca-certificates.crt'\n"})
    # an opentelemetry-sdk the server's app cannot import from: importing the console script's
    # module works, creating the app (as each worker does at boot) fails
    build_wheel(folder, "opentelemetry-sdk", "99.0", modules={"opentelemetry/sdk/__init__.py": ""})
    build_wheel(folder, "breaks-cors", "1.0", modules={
        "flask_cors/__init__.py": "raise ImportError('flask_cors broken on purpose')\n"})
    return folder


@pytest.fixture(scope="session")
def index(packages: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    served = start_index(packages, tmp_path_factory.mktemp("index") / "pypiserver.log")
    yield served
    served.stop()


@pytest.fixture(scope="session")
def releases_index(packages: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """A real index serving real older releases of the scoring server with their
    dependencies (`.cache/server-releases`, downloaded once by `./dev`), and the test app's
    `greeting`."""
    if not any(SERVER_RELEASES.glob("azureml_inference_server_http-*.whl")):
        pytest.fail(f"no server releases at {SERVER_RELEASES}: run `./dev test`, which "
                    "downloads them once (tests themselves never reach the network)")
    folder = tmp_path_factory.mktemp("releases")
    for wheel in (*SERVER_RELEASES.glob("*.whl"), *packages.glob("greeting-*.whl"),
                  *packages.glob("tinydep-*.whl")):
        shutil.copy(wheel, folder)
    served = start_index(folder, tmp_path_factory.mktemp("releases-index") / "pypiserver.log")
    yield served
    served.stop()


@pytest.fixture
def own_index(packages: Path, tmp_path: Path) -> Iterator[Index]:
    """An index of this test's own, which the test may stop."""
    served = start_index(packages, tmp_path / "pypiserver.log")
    yield served
    served.stop()


# --- the simulated image --------------------------------------------------------------

@pytest.fixture(scope="session")
def image(packages: Path, tmp_path_factory: pytest.TempPathFactory) -> ImageVenv:
    """A venv standing in for the prebuilt image: this project (with uv), the real scoring
    server and a `framework` package, installed offline."""
    if not any(IMAGE_WHEELHOUSE.glob("azureml_inference_server_http-*.whl")):
        pytest.fail(f"no image wheelhouse at {IMAGE_WHEELHOUSE}: run `./dev test`, which "
                    "downloads it once (tests themselves never reach the network)")
    tmp = tmp_path_factory.mktemp("image")
    return build_image(tmp / "image", tmp, extra_find_links=[packages],
                       extra_packages=["framework==1.0"])


# --- apps and starts ------------------------------------------------------------------

SCORE_PY = """\
import greeting


def init():
    pass


def run(raw_data):
    return {"greeting": greeting.greet("world")}
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app root with a scoring script that needs the `greeting` package."""
    root = tmp_path / "app"
    root.mkdir()
    (root / "score.py").write_text(SCORE_PY)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def contract_env(tmp: Path, image: ImageVenv, app: Path, cache: Path,
                 **extra: str) -> dict[str, str]:
    """What a container of the image would see: the image's bin on PATH, the contract
    variables, a cache folder of the test's own."""
    env = hermetic_env(tmp, AML_APP_ROOT=str(app), AZUREML_ENTRY_SCRIPT="score.py",
                       EXTENSIBILITY_CACHE_DIR=str(cache), **extra)
    env["PATH"] = f"{image.bin}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def run_entrypoint(image: ImageVenv, env: Mapping[str, str], *args: str,
                   timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(image.bin / "extensibility"), *args], env=dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log: Path

    def score(self, payload: dict[str, Any]) -> requests.Response:
        return requests.post(f"http://127.0.0.1:{self.port}/score", json=payload, timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class StartServer(Protocol):
    def __call__(self, image: ImageVenv, env: Mapping[str, str],
                 args: Sequence[str] = ("run",)) -> Server: ...


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start the entrypoint with the default server command; wait until GET / is healthy."""
    started: list[Server] = []

    def start(image: ImageVenv, env: Mapping[str, str], args: Sequence[str] = ("run",)) -> Server:
        port = free_port()
        log = tmp_path / f"server-{len(started)}.log"
        with log.open("w") as out:
            process = subprocess.Popen([str(image.bin / "extensibility"), *args],
                                       env={**env, "EXTENSIBILITY_SERVER_PORT": str(port)},
                                       stdout=out, stderr=subprocess.STDOUT, text=True)
        server = Server(process, port, log)
        started.append(server)

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited {process.returncode}:\n{server.output()}")
            try:
                response = requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            except requests.RequestException:
                return False
            return response.status_code == 200

        wait_for(healthy, 180, f"the scoring server on port {port}")
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
