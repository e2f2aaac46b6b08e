"""Start-up timings for an MLflow-style conda.yaml, measured side by side in one run.

    ./dev bench-conda [--repeat N] [--sets tiny ml] [--chart docs/performance-conda.png]

The file is what MLflow writes: `python=<the image's version>`, `pip<=<its pip>`, and the
packages in its `pip:` section (tiny: one wheel; ml: numpy, pandas, scikit-learn, scipy),
served by a local pypiserver together with the image's own wheels.
- ours-cold: `extensibility prepare` on an empty cache (the overlay strategy);
- ours-cold-prefix: the same file with EXTENSIBILITY_CONDA_STRATEGY=prefix: a conda prefix
  with its own Python from a local channel (py-rattler), a venv on it, the `pip:` section and
  the scoring server installed there;
- ours-warm: `extensibility run -- true` on a cache hit;
- old-start: the old behaviour, a fresh environment on every start (restarts included): a new
  environment, the `pip:` section, then the scoring server installed again into it. conda is
  not available here, so `python -m venv` stands in for `conda env create`: this understates
  the old cost (conda also solves and links Python itself);
- score-*: from launch to the first successful POST /score with the real scoring server.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (
    SCORE,
    SETS,
    Bench,
    ensure_wheels,
    first_score,
    header,
    interleaved,
    table,
)
from tests.conda_channel import pip_channel, python_channel
from tests.support import (
    IMAGE_WHEELHOUSE,
    ImageVenv,
    build_image,
    free_port,
    start_index,
)

CONDA_YAML = """\
channels:
- conda-forge
dependencies:
- python={python}
- pip<={pip}
- pip:
  - --index-url {index}
{lines}name: mlflow-env
"""

RATIOS = [
    ("old-start", "ours-cold", "old start / ours cold"),
    ("old-start", "ours-warm", "old start (every start) / ours warm"),
    ("ours-cold-prefix", "ours-cold", "prefix strategy cold / overlay cold"),
    ("score-old", "score-ours-cold", "first score: old / ours cold"),
    ("score-old", "score-ours-warm", "first score: old / ours warm"),
]


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds `command` takes; a failure raises with the command's last output lines."""
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-25:])
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}:\n{tail}")
    return time.perf_counter() - started


class CondaBench(Bench):
    """Bench's folders and environments, with the conda file as the request."""

    def __init__(self, work: Path, image: ImageVenv, channel: Path) -> None:
        super().__init__(work, image, tiny_wheels=work)  # the scaling series are not run here
        self.channel = channel

    def env(self, app: Path, cache: Path | None = None, **extra: str) -> dict[str, str]:
        env = super().env(app, cache, **extra)
        del env["AZUREML_EXTRA_REQUIREMENTS_TXT"]
        env["AZUREML_EXTRA_CONDA_YAML"] = "conda.yaml"
        return env

    def series(self, set_name: str, index_url: str) -> dict[str, Callable[[], float]]:
        app = self.folder(f"app-{set_name}")
        lines = "".join(f"  - {line}\n" for line in SETS[set_name])
        (app / "conda.yaml").write_text(CONDA_YAML.format(
            python=platform.python_version(), pip=pip_wheel().name.split("-")[1],
            index=index_url, lines=lines))
        (app / "requirements.txt").write_text(f"--index-url {index_url}\n"
                                              + "".join(f"{r}\n" for r in SETS[set_name])
                                              + "azureml-inference-server-http\n")
        (app / "score.py").write_text(SCORE.get(set_name, SCORE["tiny"]))
        entry = str(self.image.bin / "extensibility")
        warm = self.env(app)
        # the key includes the server command's module: build for both warm series
        timed([entry, "prepare"], warm)
        timed([entry, "run", "--", "true"], warm)

        def prefix_env() -> dict[str, str]:
            return self.env(app, EXTENSIBILITY_CONDA_STRATEGY="prefix",
                            EXTENSIBILITY_CONDA_CHANNELS=str(self.channel))

        def old_env() -> tuple[Path, dict[str, str]]:
            folder = self.folder("old")
            return folder / "env", {**warm, "PIP_CACHE_DIR": str(folder / "pip-cache")}

        def old_start() -> float:
            venv, env = old_env()
            return timed([str(self.image.python), "-m", "venv", str(venv)], env) + timed(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                 str(app / "requirements.txt")], env)

        def score(kind: str) -> float:
            port = free_port()
            if kind == "old":
                venv, env = old_env()
                script = (f'cd "{app}" && "{self.image.python}" -m venv "{venv}" && '
                          f'"{venv}/bin/python" -m pip install -q -r requirements.txt && '
                          f'exec "{venv}/bin/azmlinfsrv" --entry_script score.py --port {port}')
                return first_score(["sh", "-c", script], env, port)
            env = warm if kind == "warm" else self.env(app)
            return first_score([entry, "run"], {**env, "EXTENSIBILITY_SERVER_PORT": str(port)},
                               port)

        return {
            "ours-cold": lambda: timed([entry, "prepare"], self.env(app)),
            "ours-cold-prefix": lambda: timed([entry, "prepare"], prefix_env()),
            "ours-warm": lambda: timed([entry, "run", "--", "true"], warm),
            "old-start": old_start,
            "score-ours-cold": lambda: score("cold"),
            "score-ours-warm": lambda: score("warm"),
            "score-old": lambda: score("old"),
        }


def pip_wheel() -> Path:
    return next(IMAGE_WHEELHOUSE.glob("pip-*.whl"))


def served_folder(work: Path, set_name: str) -> Path:
    """The set's wheels and the image's (the old behaviour and the prefix strategy install
    the scoring server again), in one folder for pypiserver."""
    folder = work / f"served-{set_name}"
    folder.mkdir()
    for wheel in [*ensure_wheels(set_name, work).glob("*.whl"), *IMAGE_WHEELHOUSE.glob("*")]:
        if wheel.suffix in (".whl", ".gz", ".zip") and not (folder / wheel.name).exists():
            (folder / wheel.name).symlink_to(wheel)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--chart", type=Path, help="write a PNG chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="extensibility-bench-conda-") as tmp:
        work = Path(tmp)
        image = build_image(work / "image", work, extra_packages=["py-rattler"])
        channel = pip_channel(python_channel(work / "channel"), pip_wheel())
        bench = CondaBench(work, image, channel)
        samples: dict[str, dict[str, list[float]]] = {}
        for set_name in args.sets:
            index = start_index(served_folder(work, set_name), work / f"index-{set_name}.log")
            try:
                samples[set_name] = interleaved(bench.series(set_name, index.url),
                                                args.repeat)
            finally:
                index.stop()
    print(header(args.repeat))
    print(table(samples))
    print("\n| set | ratio | value |\n|---|---|---:|")
    for set_name, series in samples.items():
        median = {name: statistics.median(values) for name, values in series.items()}
        for top, bottom, label in RATIOS:
            print(f"| {set_name} | {label} | {median[top] / median[bottom]:.2f} |")
    if args.chart:
        chart(samples, args.chart)
        print(f"chart written to {args.chart}")
    print(json.dumps({"samples": samples}), file=sys.stderr)
    return 0


def chart(samples: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(samples), figsize=(6 * len(samples), 4), squeeze=False)
    for axis, (set_name, series) in zip(axes[0], samples.items()):
        names = list(series)
        axis.barh(names, [statistics.median(series[n]) for n in names], color="#4472c4")
        axis.set_xscale("log")
        axis.set_xlabel("seconds (median, log scale)")
        axis.set_title(f"MLflow-style conda.yaml, {set_name} set")
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
