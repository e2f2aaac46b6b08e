"""Run examples/quickstart end to end, as a container of a prebuilt image would.

1. build the example's extra package (tinystats) into the app's wheelhouse;
2. build a simulated image: a venv with this project and the real scoring server;
3. start the entrypoint with the contract variables (cold: installs into the cache),
   POST /score, stop; start again (warm: cache hit), POST /score, stop.

Run with `./dev example`. Needs no network beyond the package registry (and none at all once
`.cache/image-wheels` exists).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import (
    REPO,
    build_image,
    build_project_wheel,
    free_port,
    hermetic_env,
    wait_for,
)

APP = REPO / "examples" / "quickstart"
WORK = REPO / ".cache" / "example"


def build_wheelhouse() -> None:
    wheelhouse = APP / "wheelhouse"
    shutil.rmtree(wheelhouse, ignore_errors=True)
    build_project_wheel(APP / "packages" / "tinystats", wheelhouse, WORK)


def start(image_bin: Path, cache: Path, label: str) -> float:
    port = free_port()
    env = hermetic_env(WORK, AML_APP_ROOT=str(APP), AZUREML_ENTRY_SCRIPT="score.py",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt",
                       EXTENSIBILITY_CACHE_DIR=str(cache), EXTENSIBILITY_SERVER_PORT=str(port))
    env["PATH"] = f"{image_bin}:{env['PATH']}"
    print(f"\n=== {label} start: {image_bin / 'extensibility'} run", flush=True)
    started = time.monotonic()
    server = subprocess.Popen([str(image_bin / "extensibility"), "run"], env=env)
    try:
        def healthy() -> bool:
            if server.poll() is not None:
                raise SystemExit(f"the entrypoint exited with {server.returncode}")
            try:
                return requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, 300, "the scoring server")
        ready = time.monotonic() - started
        response = requests.post(f"http://127.0.0.1:{port}/score",
                                 json={"data": [1.0, 2.0, 3.0, 4.0]}, timeout=30)
        response.raise_for_status()
        print(f"=== {label} start: healthy after {ready:.2f} s; POST /score -> {response.json()}",
              flush=True)
        return ready
    finally:
        server.send_signal(signal.SIGTERM)  # exec kept the PID: the server gets it directly
        server.wait(timeout=30)


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    build_wheelhouse()
    image_root = WORK / "image"
    shutil.rmtree(image_root, ignore_errors=True)
    print(f"=== building the simulated image at {image_root}", flush=True)
    image = build_image(image_root, WORK)
    cache = WORK / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cold = start(image.bin, cache, "cold")
    warm = start(image.bin, cache, "warm")
    print(f"\nquickstart: cold start {cold:.2f} s, warm start {warm:.2f} s to a healthy server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
