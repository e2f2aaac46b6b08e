"""Start-up timings, measured side by side in one run (interleaved A B A B ...).

    ./dev bench [--repeat N] [--sets tiny ml] [--chart docs/performance.png]

For each package set (tiny: the quickstart's one wheel; ml: numpy, pandas, scikit-learn,
scipy and their dependencies, downloaded once into .cache/bench-wheels and served by a local
pypiserver, so network noise stays out):
- ours-cold-uv / ours-cold-pip: `extensibility prepare` on an empty cache (compiles while
  installing, as for an image build);
- ours-cold-run: `extensibility run -- true` on an empty cache, to the exec: the server
  does not wait for byte-compiling (it runs in the background after the hand-off);
- uv-raw / pip-raw: `uv venv` + `uv pip install --compile-bytecode`, `python -m venv` +
  `pip install`, by hand (both compile bytecode, as pip does by default and as ours does);
  every cold series starts with empty installer caches;
- old-start / old-restart: the old script's `pip install -r` into (a copy of) the image, on
  its first start and on a restart where everything is "already satisfied";
- ours-warm: the installed `extensibility` console script, `run -- true`, on a cache hit;
  direct: exec'ing `true` itself; python-pass: `python -c pass` with the image's Python;
- score-*: from start to the first successful POST /score with the real scoring server;
  score-restart-compiling / score-restart-compiled: a restart right after a cold start's
  first score (its background compile still running, as the log of each sample says) and
  one after the compile finished; score-old-restart: the old script's restart (pip install
  -r, all satisfied, then the server).
Then the warm overhead as the image grows (10, 100, 1000 distributions) and as the request
grows (1, 50, 200 requirements), and the entrypoint's peak memory (max RSS) on a warm start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import (
    REPO,
    ImageVenv,
    build_image,
    build_project_wheel,
    free_port,
    hermetic_env,
    start_index,
    wait_for,
)
from tests.wheels import build_wheel

BENCH_WHEELS = REPO / ".cache" / "bench-wheels"
SETS = {
    "tiny": ["tinystats==0.1.0"],
    "ml": ["numpy", "pandas", "scikit-learn", "scipy"],
}
SCORE = {
    "tiny": "import tinystats\n\ndef init():\n    pass\n\ndef run(raw):\n"
            "    return {'mean': tinystats.mean([1, 2, 3])}\n",
    "ml": "import numpy, pandas, sklearn.linear_model\n\ndef init():\n    pass\n\n"
          "def run(raw):\n    return {'mean': float(pandas.Series(numpy.arange(4)).mean())}\n",
}


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def first_score(command: list[str], env: dict[str, str], port: int) -> float:
    """Seconds from launching `command` to the first successful POST /score."""
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        def scored() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {server.returncode}")
            try:
                return requests.post(f"http://127.0.0.1:{port}/score", json={},
                                     timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(scored, 600, "the first score")
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)


class Bench:
    def __init__(self, work: Path, image: ImageVenv, tiny_wheels: Path) -> None:
        self.work, self.image, self.tiny_wheels = work, image, tiny_wheels
        self.count = 0
        self.compiling_at_restart: list[bool] = []  # was the compile running, per sample

    def folder(self, name: str) -> Path:
        self.count += 1
        path = self.work / f"{name}-{self.count}"
        path.mkdir(parents=True)
        return path

    def app(self, set_name: str, lines: list[str], source: str) -> Path:
        """An app folder: `source` is the index option line, then the requirements."""
        app = self.folder(f"app-{set_name}")
        (app / "requirements.txt").write_text(source + "\n" + "\n".join(lines) + "\n")
        (app / "score.py").write_text(SCORE.get(set_name, SCORE["tiny"]))
        return app

    def env(self, app: Path, cache: Path | None = None, **extra: str) -> dict[str, str]:
        env = hermetic_env(self.work, AML_APP_ROOT=str(app), AZUREML_ENTRY_SCRIPT="score.py",
                           AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt",
                           EXTENSIBILITY_CACHE_DIR=str(cache or self.folder("cache")), **extra)
        env["PATH"] = f"{self.image.bin}:{env['PATH']}"
        # our default: installer download caches inside the (fresh) cache folder
        env.pop("UV_CACHE_DIR")
        env.pop("PIP_CACHE_DIR")
        return env

    def series(self, set_name: str, index_url: str) -> dict[str, Callable[[], float]]:
        lines = SETS[set_name]
        app = self.app(set_name, lines, f"--index-url {index_url}")
        entry = str(self.image.bin / "extensibility")
        uv = str(self.image.bin / "uv")
        requirements = str(app / "requirements.txt")
        warm = self.env(app)
        subprocess.run([entry, "run", "--", "true"], env=warm, check=True, capture_output=True)
        score_warm = self.env(app)
        subprocess.run([entry, "prepare"], env=score_warm, check=True, capture_output=True)
        old_restart_image = self.copy_image()
        subprocess.run([str(old_restart_image / "bin" / "python"), "-m", "pip", "install", "-q",
                        "-r", requirements], env=warm, check=True)

        def ours_cold(installer: str) -> Callable[[], float]:
            return lambda: timed([entry, "prepare"],
                                 self.env(app, EXTENSIBILITY_INSTALLER=installer))

        def fresh() -> dict[str, str]:
            # every cold series starts with empty installer caches, as ours does (its
            # download cache lives in the fresh cache folder)
            folder = self.folder("installer-cache")
            return {**warm, "UV_CACHE_DIR": str(folder / "uv"), "PIP_CACHE_DIR": str(folder)}

        def pip_raw() -> float:
            venv, env = self.folder("pip-raw") / "venv", fresh()
            return timed([str(self.image.python), "-m", "venv", str(venv)], env) + timed(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                 requirements], env)

        def uv_raw() -> float:
            venv, env = self.folder("uv-raw") / "venv", fresh()
            return timed([uv, "venv", "-q", "--python", str(self.image.python), str(venv)],
                         env) + timed([uv, "pip", "install", "-q", "--compile-bytecode",
                                       "--python", str(venv / "bin" / "python"), "-r",
                                       requirements], env)

        def old_start() -> float:
            copy = self.copy_image()  # the old script installed into the image itself
            return timed([str(copy / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                          requirements], fresh())

        def score(kind: str) -> float:
            port = free_port()
            if kind in ("old", "old-restart"):  # pip install -r into the image, then serve
                copy = self.copy_image() if kind == "old" else old_restart_image
                script = (f'cd "{app}" && "{copy}/bin/python" -m pip install -q -r '
                          f'"{requirements}" && exec "{copy}/bin/python" "{copy}/bin/azmlinfsrv" '
                          f"--entry_script score.py --port {port}")
                return first_score(["sh", "-c", script], fresh() if kind == "old" else warm,
                                   port)
            env = score_warm if kind == "warm" else self.env(app)
            return first_score([entry, "run"], {**env, "EXTENSIBILITY_SERVER_PORT": str(port)},
                               port)

        def restart(compiled: bool) -> float:
            """A cold start served once, then a restart (timed) before or after its
            background compile finished."""
            env = self.env(app)
            port = free_port()
            first_score([entry, "run"], {**env, "EXTENSIBILITY_SERVER_PORT": str(port)}, port)
            marker = next(Path(env["EXTENSIBILITY_CACHE_DIR"]).glob(
                "envs/*/.extensibility")) / "compiled"
            if compiled:
                wait_for(marker.exists, 600, "the background compile")
            else:
                self.compiling_at_restart.append(not marker.exists())
            port = free_port()
            return first_score([entry, "run"], {**env, "EXTENSIBILITY_SERVER_PORT": str(port)},
                               port)

        return {
            "ours-cold-uv": ours_cold("uv"),
            "ours-cold-run": lambda: timed([entry, "run", "--", "true"], self.env(app)),
            "ours-cold-pip": ours_cold("pip"),
            "uv-raw": uv_raw,
            "pip-raw": pip_raw,
            "old-start": old_start,
            "old-restart": lambda: timed([str(old_restart_image / "bin" / "python"), "-m", "pip",
                                          "install", "-q", "-r", requirements], warm),
            "ours-warm": lambda: timed([entry, "run", "--", "true"], warm),
            "direct": lambda: timed(["true"], warm),
            "python-pass": lambda: timed([str(self.image.python), "-c", "pass"], warm),
            "score-ours-cold": lambda: score("cold"),
            "score-ours-warm": lambda: score("warm"),
            "score-restart-compiling": lambda: restart(compiled=False),
            "score-restart-compiled": lambda: restart(compiled=True),
            "score-old": lambda: score("old"),
            "score-old-restart": lambda: score("old-restart"),
        }

    def copy_image(self) -> Path:
        copy = self.folder("image-copy") / "image"
        shutil.copytree(self.image.root, copy, symlinks=True)
        return copy

    def warm_overhead(self, image_root: Path, app: Path, repeat: int) -> float:
        """Median warm `run -- true` minus median direct `true`, for an image copy."""
        python = str(image_root / "bin" / "python")
        env = self.env(app)
        command = [python, "-m", "extensibility", "run", "--", "true"]
        subprocess.run(command, env=env, check=True, capture_output=True)
        ours = [timed(command, env) for _ in range(repeat)]
        direct = [timed([python, "-c", "pass"], env) for _ in range(repeat)]
        return statistics.median(ours) - statistics.median(direct)

    def scaling_image(self, counts: list[int], repeat: int) -> dict[int, float]:
        app = self.app("tiny", SETS["tiny"], f"--no-index\n--find-links {self.tiny_wheels}")
        result = {}
        for count in counts:
            copy = self.copy_image()
            site = next(copy.glob("lib/python3*/site-packages"))
            for i in range(count):  # synthetic installed distributions
                dist_info = site / f"synthetic_{i:04d}-1.0.dist-info"
                dist_info.mkdir()
                (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: "
                                                    f"synthetic-{i:04d}\nVersion: 1.0\n")
            result[count] = self.warm_overhead(copy, app, repeat)
        return result

    def scaling_request(self, counts: list[int], repeat: int) -> dict[int, float]:
        wheels = self.folder("synthetic-wheels")
        for i in range(max(counts)):
            build_wheel(wheels, f"req-{i:03d}", "1.0")
        result = {}
        for count in counts:
            app = self.folder("app-scaling")
            (app / "requirements.txt").write_text(
                f"--no-index\n--find-links {wheels}\n"
                + "".join(f"req-{i:03d}==1.0\n" for i in range(count)))
            result[count] = self.warm_overhead(self.image.root, app, repeat)
        return result

    def peak_memory(self) -> float:
        """Max RSS in MiB of a warm start (the exec'd `true` is far smaller)."""
        app = self.app("tiny", SETS["tiny"], f"--no-index\n--find-links {self.tiny_wheels}")
        env = self.env(app)
        command = [str(self.image.bin / "extensibility"), "run", "--", "true"]
        subprocess.run(command, env=env, check=True, capture_output=True)
        out = subprocess.run(["/usr/bin/time", "-f", "%M", *command], env=env, check=True,
                             capture_output=True, text=True).stderr.strip().splitlines()[-1]
        return int(out) / 1024


def ensure_wheels(set_name: str, work: Path) -> Path:
    if set_name == "tiny":
        return build_project_wheel(REPO / "examples" / "quickstart" / "packages" / "tinystats",
                                   work / "tiny-wheels", work)
    if not (BENCH_WHEELS / ".complete").exists():
        print(f"downloading the ml set into {BENCH_WHEELS} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(BENCH_WHEELS),
                        *SETS["ml"]], check=True)
        (BENCH_WHEELS / ".complete").touch()
    return BENCH_WHEELS


def interleaved(runs: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """`repeat` rounds of every series in turn (A B C A B C ...): drift hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            samples[name].append(run())
    return samples


def header(repeat: int) -> str:
    return (f"\n{repeat} runs each, interleaved; Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} cores\n")


def table(samples: dict[str, dict[str, list[float]]]) -> str:
    out = ["| set | series | median (s) | min (s) | max (s) |", "|---|---|---:|---:|---:|"]
    for set_name, series in samples.items():
        for name, values in series.items():
            out.append(f"| {set_name} | {name} | {statistics.median(values):.3f} | "
                       f"{min(values):.3f} | {max(values):.3f} |")
    return "\n".join(out)


# (numerator, denominator, what, target). "old" is the images' script: it reinstalls on every
# container start, since a container restarts from its image (score-old); score-old-restart
# is the rarer restart of the process inside a running container (everything satisfied).
RATIOS = [
    ("ours-cold-run", "uv-raw", "cold start to exec (compile deferred) / raw uv", "<= 0.5"),
    ("ours-cold-uv", "uv-raw", "cold start with uv, compiled (prepare) / raw uv", "<= 1.15"),
    ("ours-cold-pip", "pip-raw", "cold start with pip, compiled (prepare) / raw pip", "<= 1.10"),
    ("old-start", "ours-cold-run", "old start / ours cold, to exec", ">= 4"),
    ("old-restart", "ours-warm", "old process restart (all satisfied) / ours warm", ">= 50"),
    ("score-old", "score-ours-cold", "first score: old / ours cold", ">= 3"),
    ("score-old", "score-ours-warm", "first score: old / ours warm (prepared)", ">= 10"),
    ("score-old", "score-restart-compiling",
     "first score on a restart: old / ours, compile still running", ">= 10"),
    ("score-old", "score-restart-compiled",
     "first score on a restart: old / ours, compiled", ">= 10"),
    ("score-old-restart", "score-restart-compiled",
     "first score: old process restart / ours restart", "> 1"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--chart", type=Path, help="write a PNG chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="extensibility-bench-") as tmp:
        work = Path(tmp)
        image = build_image(work / "image", work)
        samples: dict[str, dict[str, list[float]]] = {}
        bench = Bench(work, image, ensure_wheels("tiny", work))
        for set_name in args.sets:
            index = start_index(ensure_wheels(set_name, work), work / f"index-{set_name}.log")
            try:
                samples[set_name] = interleaved(bench.series(set_name, index.url),
                                                args.repeat)
            finally:
                index.stop()
        by_image = bench.scaling_image([10, 100, 1000], args.repeat * 2)
        by_request = bench.scaling_request([1, 50, 200], args.repeat * 2)
        memory = bench.peak_memory()
    print(header(args.repeat))
    print(table(samples))
    print("\n| set | ratio | value | target |\n|---|---|---:|---|")
    for set_name, series in samples.items():
        median = {name: statistics.median(values) for name, values in series.items()}
        for top, bottom, label, target in RATIOS:
            print(f"| {set_name} | {label} | {median[top] / median[bottom]:.2f} | {target} |")
    print("\n| warm overhead of the console script `extensibility run -- true` | ms | target |"
          "\n|---|---:|---|")
    for set_name, series in samples.items():
        ours = statistics.median(series["ours-warm"])
        print(f"| {set_name} request, over exec'ing `true` directly | "
              f"{(ours - statistics.median(series['direct'])) * 1000:.0f} | <= 40 |")
        print(f"| {set_name} request, over `python -c pass` | "
              f"{(ours - statistics.median(series['python-pass'])) * 1000:.0f} | <= 25 |")
    print(f"\nrestarts timed while the background compile still ran: "
          f"{sum(bench.compiling_at_restart)} of {len(bench.compiling_at_restart)} "
          "(score-restart-compiling samples, all sets)")
    for count, seconds in by_image.items():
        print(f"| image with +{count} distributions, vs `python -c pass` | {seconds * 1000:.0f} |")
    for count, seconds in by_request.items():
        print(f"| {count} requirements, vs `python -c pass` | {seconds * 1000:.0f} |")
    print(f"\nentrypoint peak memory (max RSS) on a warm start: {memory:.1f} MiB")
    if args.chart:
        chart(samples, by_image, by_request, args.chart)
        print(f"chart written to {args.chart}")
    print(json.dumps({"samples": samples, "by_image": by_image, "by_request": by_request,
                      "memory_mib": memory}), file=sys.stderr)
    return 0


def chart(samples: dict[str, dict[str, list[float]]], by_image: dict[int, float],
          by_request: dict[int, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(samples) + 1, figsize=(6 * (len(samples) + 1), 5))
    for axis, (set_name, series) in zip(axes, samples.items()):
        names = [n for n in series if n != "direct"]
        axis.barh(names, [statistics.median(series[n]) for n in names], color="#4472c4")
        axis.set_xscale("log")
        axis.set_xlabel("seconds (median, log scale)")
        axis.set_title(f"{set_name} set")
        axis.invert_yaxis()
    last = axes[-1]
    last.plot(list(by_image), [v * 1000 for v in by_image.values()], "o-",
              label="image distributions (10, 100, 1000)")
    last.plot(list(by_request), [v * 1000 for v in by_request.values()], "s-",
              label="requirements (1, 50, 200)")
    last.set_xscale("log")
    last.set_ylim(bottom=0)
    last.set_xlabel("count")
    last.set_ylabel("warm overhead (ms)")
    last.set_title("warm start overhead vs size")
    last.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
