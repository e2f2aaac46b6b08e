"""Start-up timings, measured side by side in one run (interleaved A B A B ...).

    ./dev bench [--repeat N] [--chart docs/performance.png]

Series, all from empty caches/venvs unless "warm":
- ours-cold-uv / ours-cold-pip: `extensibility prepare` from an empty cache (overlay + install);
- ours-warm: `extensibility run -- true` on a cache hit, and `direct`: exec'ing `true` directly;
- pip-raw / uv-raw: `python -m venv` + `pip install -r`, `uv venv` + `uv pip install -r`;
- old-start / old-restart: the old behaviour, `pip install -r` into the image at every start
  (first start, and a restart where everything is "already satisfied").
The request is the quickstart's (examples/quickstart). Prints a markdown table of medians,
ranges and ratios; absolute times on shared machines are noisy, ratios less so.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import REPO, Image, build_image, hermetic_env

APP = REPO / "examples" / "quickstart"


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def series(image: Image, work: Path) -> dict[str, Callable[[int], float]]:
    requirements = APP / "requirements.txt"
    base = hermetic_env(work, AML_APP_ROOT=str(APP), AZUREML_ENTRY_SCRIPT="score.py",
                        AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    extensibility = str(image.bin / "extensibility")
    uv = str(image.bin / "uv")
    warm_cache = work / "warm-cache"
    subprocess.run([extensibility, "prepare", "--", "true"], check=True, capture_output=True,
                   env={**base, "EXTENSIBILITY_CACHE_DIR": str(warm_cache)})

    def ours_cold(installer: str) -> Callable[[int], float]:
        def run(i: int) -> float:
            cache = work / f"cold-{installer}-{i}"
            return timed([extensibility, "prepare"], {**base, "EXTENSIBILITY_CACHE_DIR":
                                                      str(cache), "EXTENSIBILITY_INSTALLER":
                                                      installer})
        return run

    def pip_raw(i: int) -> float:
        venv = work / f"pip-raw-{i}"
        return (timed([str(image.python), "-m", "venv", "--without-pip", str(venv)], base)
                + timed([str(image.python), "-m", "pip", "--python", str(venv / "bin" / "python"),
                         "install", "-q", "-r", str(requirements)], base))

    def uv_raw(i: int) -> float:
        venv = work / f"uv-raw-{i}"
        return (timed([uv, "venv", "-q", "--python", str(image.python), str(venv)], base)
                + timed([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                         "-r", str(requirements)], base))

    def old_start(i: int) -> float:
        # The old script installed into the image itself: give it a fresh copy each time.
        target = work / f"old-{i}"
        shutil.copytree(image.root, target, symlinks=True)
        return timed([str(target / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                      str(requirements)], base)

    def old_restart(i: int) -> float:
        target = work / "old-0"
        return timed([str(target / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                      str(requirements)], base)

    return {
        "ours-cold-uv": ours_cold("uv"),
        "ours-cold-pip": ours_cold("pip"),
        "uv-raw": uv_raw,
        "pip-raw": pip_raw,
        "old-start": old_start,
        "old-restart": old_restart,
        "ours-warm": lambda i: timed([extensibility, "run", "--", "true"],
                                     {**base, "EXTENSIBILITY_CACHE_DIR": str(warm_cache)}),
        "direct": lambda i: timed(["true"], base),
    }


RATIOS = [
    ("ours-cold-uv", "uv-raw", "cold start with uv vs raw uv (target <= 1.15)"),
    ("ours-cold-pip", "pip-raw", "cold start with pip vs raw pip (target <= 1.10)"),
    ("old-start", "ours-cold-uv", "old first start vs ours cold with uv (target >= 4)"),
    ("old-restart", "ours-warm", "old restart vs ours warm (target >= 50)"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if not (APP / "wheelhouse").is_dir():
        sys.exit("run ./dev example once first: it builds the quickstart's wheelhouse")
    with tempfile.TemporaryDirectory(prefix="extensibility-bench-") as tmp:
        work = Path(tmp)
        image = build_image(work / "image", work)
        runs = series(image, work)
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for i in range(args.repeat):  # interleaved, so drift hits every series alike
            for name, run in runs.items():
                samples[name].append(run(i))
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"\n{args.repeat} runs each, interleaved; python {sys.version.split()[0]}\n")
    print("| series | median (s) | min (s) | max (s) |")
    print("|---|---:|---:|---:|")
    for name, values in samples.items():
        print(f"| {name} | {medians[name]:.3f} | {min(values):.3f} | {max(values):.3f} |")
    overhead = medians["ours-warm"] - medians["direct"]
    print(f"\nwarm start overhead over a direct exec: {overhead * 1000:.0f} ms\n")
    print("| ratio | value |")
    print("|---|---:|")
    for numerator, denominator, label in RATIOS:
        print(f"| {label} | {medians[numerator] / medians[denominator]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
