"""This tree against another revision, interleaved in one run (A B A B ...).

    ./dev bench-compare REV [--repeat N] [--chart FILE]

Builds one simulated image per side (the revision's wheel from a `git worktree`, this
tree's wheel), then times, through each image's installed `extensibility` console script:
- cold: `extensibility run -- true` on an empty cache (the quickstart's one-wheel request,
  served by a local pypiserver, installed with uv);
- warm: the same command on that cache (a hit), against exec'ing `/bin/true` directly.
A refactoring should leave both ratios near 1.0; the warm figure is what every restart pays.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import REPO, hermetic_env, start_index
from tests.wheels import build_wheel


def image_for(source: Path, work: Path, name: str) -> Path:
    from tests.support import IMAGE_WHEELHOUSE

    env = hermetic_env(work)
    wheel_dir = work / f"wheel-{name}"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheel_dir), str(source)], env=env, check=True)
    root = work / f"image-{name}"
    subprocess.run([sys.executable, "-m", "venv", str(root)], env=env, check=True)
    wheel = next(wheel_dir.glob("*.whl"))  # the distribution's name differs across revisions
    subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
                    "--find-links", str(IMAGE_WHEELHOUSE), f"{wheel}[server,uv]"], env=env,
                   check=True)
    return root


def timed(command: list[str], env: dict[str, str], expect: str = "") -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or expect not in result.stderr:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="git revision to compare with, e.g. HEAD~3")
    parser.add_argument("--repeat", type=int, default=7, help="cold samples per side")
    parser.add_argument("--chart", type=Path, help="write a PNG chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="extensibility-compare-") as tmp:
        work = Path(tmp)
        other = work / "other"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(other),
                        args.revision], check=True)
        try:
            return measure(args, work, other)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(other)],
                           check=False)


def measure(args: argparse.Namespace, work: Path, other: Path) -> int:
    images = {args.revision: image_for(other, work, "other"), "this tree": image_for(REPO, work,
                                                                                     "this")}
    packages = work / "packages"
    build_wheel(packages, "tinydep", "1.0")
    index = start_index(packages, work / "index.log")
    app = work / "app"
    app.mkdir()
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ntinydep\n")

    def env_for(side: str, cache: Path) -> dict[str, str]:
        env = hermetic_env(work, AML_APP_ROOT=str(app), AZUREML_ENTRY_SCRIPT="score.py",
                           EXTENSIBILITY_CACHE_DIR=str(cache),
                           AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
        env["PATH"] = f"{images[side] / 'bin'}:{env['PATH']}"
        return env

    samples: dict[str, list[float]] = {}
    try:
        for i in range(args.repeat):
            for n, (side, image) in enumerate(images.items()):
                command = [str(image / "bin" / "extensibility"), "run", "--", "true"]
                cache = work / f"cache-{n}-{i}"
                samples.setdefault(f"cold {side}", []).append(timed(command, env_for(side, cache)))
        for _ in range(args.repeat * 4):
            for n, (side, image) in enumerate(images.items()):
                command = [str(image / "bin" / "extensibility"), "run", "--", "true"]
                samples.setdefault(f"warm {side}", []).append(
                    timed(command, env_for(side, work / f"cache-{n}-0"), "request unchanged"))
            samples.setdefault("direct /bin/true", []).append(timed(["/bin/true"], {}))
    finally:
        index.stop()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{'series':28} {'median':>10} {'n':>4}")
    for name, value in medians.items():
        print(f"{name:28} {value * 1000:8.1f}ms {len(samples[name]):4}")
    this, that = "this tree", args.revision
    print(f"cold: this tree / {that} = {medians[f'cold {this}'] / medians[f'cold {that}']:.2f}")
    print(f"warm: this tree / {that} = {medians[f'warm {this}'] / medians[f'warm {that}']:.2f}")
    direct = medians["direct /bin/true"]
    for side in images:
        print(f"warm overhead over a direct exec, {side}: "
              f"{(medians[f'warm {side}'] - direct) * 1000:.1f} ms")
    if args.chart:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 3))
        axis.barh(list(medians), [v * 1000 for v in medians.values()])
        axis.set_xlabel("median ms (lower is better)")
        figure.tight_layout()
        figure.savefig(args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
