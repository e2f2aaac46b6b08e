"""Concurrent cold starts and crash recovery, counted through the store's own journal.

    ./dev bench-reliability [--replicas 1 4 8] [--crashes 3]

- N replicas (own temp folders, one cache) start together on an empty cache: how many
  installs ran, and the wall time until all have exec'd, against a single start;
- a build is killed (SIGKILL) in each phase, then started again: how many recovered.
The index sits behind a proxy that adds 0.2 s per request, like a remote index would.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faultproxy import FaultProxy
from tests.support import ImageVenv, Pause, build_image, hermetic_env, start_index, wait_for
from tests.wheels import build_wheel

PROBE = "import greeting; print(greeting.greet('ok'))"


def builds(cache: Path) -> int:
    path = cache / "journal.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(json.loads(line)["event"] == "build-complete" for line in lines)


def environment(work: Path, cache: Path, url: str, **extra: str) -> dict[str, str]:
    app = work / "app"
    app.mkdir(exist_ok=True)
    (app / "requirements.txt").write_text(f"--index-url {url}\ngreeting\n")
    return hermetic_env(work, AML_APP_ROOT=str(app),
                        AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt",
                        EXTENSIBILITY_CACHE_DIR=str(cache), **extra)


def concurrent(image: ImageVenv, work: Path, url: str, replicas: int) -> tuple[int, float]:
    cache = work / f"cache-{replicas}"
    env = environment(work, cache, url)
    started = time.perf_counter()
    processes = []
    for i in range(replicas):
        own = work / f"tmp-{replicas}-{i}"
        own.mkdir()
        processes.append(subprocess.Popen(
            [str(image.bin / "extensibility"), "run", "--", "python", "-c", PROBE],
            env={**env, "TMPDIR": str(own)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    failed = sum(p.wait() != 0 for p in processes)
    if failed:
        raise SystemExit(f"{failed} of {replicas} replicas failed")
    return builds(cache), time.perf_counter() - started


def crash(image: ImageVenv, work: Path, url: str, phase: str, attempt: int) -> bool:
    cache = work / f"crash-{phase}-{attempt}"
    env = environment(work, cache, url)
    command = [str(image.bin / "extensibility"), "run", "--", "python", "-c", PROBE]
    if phase == "install":
        builder = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, text=True)
        children = Path(f"/proc/{builder.pid}/task/{builder.pid}/children")
        wait_for(lambda: bool(children.read_text().split()), 60, "the installer")
    else:
        pause = Pause(work / f"pause-{phase}-{attempt}", phase)
        builder = subprocess.Popen(command, env={**env, **pause.env}, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, text=True)
        pause.wait(builder)
    builder.send_signal(signal.SIGKILL)
    builder.wait()
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return again.returncode == 0 and again.stdout.strip() == "HELLO OK" and builds(cache) == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--crashes", type=int, default=3, help="kills per phase")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="extensibility-reliability-") as tmp:
        work = Path(tmp)
        packages = work / "packages"
        build_wheel(packages, "tinydep", "1.0")
        build_wheel(packages, "greeting", "1.0", requires=["tinydep"], modules={
            "greeting/__init__.py": "def greet(name):\n    return f'hello {name}'.upper()\n"})
        image = build_image(work / "image", work)
        index = start_index(packages, work / "index.log")
        try:
            with FaultProxy(index.url.removesuffix("/simple/")) as proxy:
                proxy.faults.mode, proxy.faults.delay = "slow", 0.2
                rows = [(n, *concurrent(image, work, proxy.url, n)) for n in args.replicas]
                recovered = {phase: sum(crash(image, work, proxy.url, phase, i)
                                        for i in range(args.crashes))
                             for phase in ("overlay", "install", "publish")}
        finally:
            index.stop()
    single = rows[0][2]
    print("\n| replicas | installs run | wall time (s) | vs one start |")
    print("|---:|---:|---:|---:|")
    for replicas, installs, seconds in rows:
        print(f"| {replicas} | {installs} | {seconds:.2f} | {seconds / single:.2f}x |")
    print("\n| killed during | recovered |")
    print("|---|---:|")
    for phase, count in recovered.items():
        print(f"| {phase} | {count}/{args.crashes} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
