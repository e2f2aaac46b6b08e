"""Remote environment cache timings, measured side by side in one run (interleaved A B A B ...).

    ./dev bench-remote [--repeat N] [--sets ml|tiny] [--nodes 8] [--chart PATH]

Every node is the simulated image's installed console script `extensibility` with a cache
folder and HOME of its own; nodes share a container of the real Azure Storage emulator
(Azurite, on 127.0.0.1) through EXTENSIBILITY_REMOTE_CACHE and
AZURE_STORAGE_CONNECTION_STRING. The set's wheels are served by a local pypiserver (ml: numpy,
pandas, scikit-learn, scipy, downloaded once into .cache/bench-wheels, as `./dev bench` does),
behind a gate that can shut its port.
- build-score: `extensibility run` (the real scoring server) on an empty node cache and an
  empty, fresh container, from launch to the first successful POST /score; the start builds,
  serves, and publishes in the background. Before the next sample the publish is awaited
  (build-published: launch to the `published` journal line; the server is stopped after its
  first score, so the compile and upload do not share the CPU with it);
- restore-score: the same on an empty node cache against a container where the environment
  was published beforehand (`extensibility prepare` on another node); the index's port is
  shut (connections refused) during these samples, so a restore cannot fall back to a build;
- one-cold: `extensibility prepare -- true` on an empty cache and a fresh container
  (install, compile, publish);
- nodes: N such starts at once (own caches, one fresh container), wall time until all exit 0;
  builds and restores counted from each node's journal.
Derived from the same samples: restore-step (the restore inside restore-score, as its
origin.json records it) and nodes-builder (when the building node exited).
Every sample checks its journal (built and published, or restored without a build).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (
    SETS,
    Bench,
    ensure_wheels,
    first_score,
    header,
    interleaved,
    table,
)
from tests.azurite import Azurite, Container, start_azurite
from tests.support import build_image, free_port, start_index, wait_for

PREFIX = "deployments/one/"  # where tests.azurite.Container points nodes in its container
# (numerator, denominator, what, target as the most the ratio may be)
RATIOS = [
    ("restore-score", "build-score", "restore + first score / cold build + first score", 0.3),
    ("nodes", "one-cold", "{n} nodes starting together (wall) / one cold start", 1.3),
]
SERIES_TIMEOUT = 1800  # seconds for one start (or N nodes) before the run is given up


class Gate:
    """A TCP forwarder on a fixed 127.0.0.1 port in front of the index. Open, it forwards
    byte for byte; shut, nothing listens on its port: connections are refused."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def shut(self) -> None:
        """Stop listening, and check that a connection is now refused."""
        if self.listener is not None:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self.listener.close()
            self.listener = None
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise RuntimeError(f"port {self.port} still accepts connections")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream)) as server:
            back = threading.Thread(target=_pump, args=(server, client), daemon=True)
            back.start()
            _pump(client, server)
            back.join()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(1 << 16):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def journal(env: dict[str, str]) -> list[str]:
    """A node's journal events, in order."""
    path = Path(env["EXTENSIBILITY_CACHE_DIR"]) / "journal.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines()] \
        if path.exists() else []


def manifest(container: Container) -> dict[str, Any] | None:
    """The container's published manifest (one environment per container here), or None."""
    client = container.client()
    names = [b.name for b in client.list_blobs(name_starts_with=f"{PREFIX}envs/")
             if b.name.endswith("/manifest.json")]
    if not names:
        return None
    fields: dict[str, Any] = json.loads(client.get_blob_client(names[0]).download_blob().readall())
    return fields


def lease_released(container: Container) -> bool:
    """No build lease is held in the container (the publisher is done)."""
    return all(b.lease.state != "leased" for b in
               container.client().list_blobs(name_starts_with=f"{PREFIX}locks/"))


def tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) \
        if path.exists() else "(no output)"


class RemoteBench:
    """The series for one package set; folders, app and node environments come from
    bench.run.Bench, used as it is."""

    def __init__(self, bench: Bench, azurite: Azurite, gate: Gate, nodes: int) -> None:
        self.bench, self.azurite, self.gate, self.nodes = bench, azurite, gate, nodes
        self.entry = str(bench.image.bin / "extensibility")
        self.published: list[float] = []  # build-score: launch to the background publish
        self.restore_steps: list[float] = []  # restore-score: the restore itself
        self.builder_exits: list[float] = []  # nodes: when the building node exited
        self.builds: list[int] = []  # per N-node run
        self.restores: list[int] = []
        self.sizes: dict[str, Any] = {}  # the published manifest's archive fields

    def container(self) -> Container:
        return Container(self.azurite, f"bench{uuid.uuid4().hex[:20]}")

    def node(self, app: Path, container: Container) -> tuple[Path, dict[str, str]]:
        """A node: its own folder (cache, HOME), sharing `container`."""
        folder = self.bench.folder("node")
        (folder / "home").mkdir()
        env = self.bench.env(app, folder / "var" / "cache", HOME=str(folder / "home"))
        for name in [n for n in env if n.startswith("AZURE_")]:  # this machine's, if any
            del env[name]
        env.update(container.env())
        return folder, env

    def run(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen([self.entry, *command], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def done(self, folder: Path, container: Container) -> None:
        """A sample's node folders and container go (the ml set's are hundreds of MiB)."""
        shutil.rmtree(folder, ignore_errors=True)
        container.client().delete_container()

    def expect(self, env: dict[str, str], events: list[str], what: str) -> None:
        found = journal(env)
        if found != events:
            raise RuntimeError(f"{what}: journal {found}, expected {events}")

    def series(self, set_name: str) -> dict[str, Callable[[], float]]:
        app = self.bench.app(set_name, SETS[set_name], f"--index-url {self.gate.url}")
        built = ["build-started", "build-complete", "published"]

        # published once, by another node, for every restore-score sample
        shared = self.container()
        folder, env = self.node(app, shared)
        log = folder / "prepare.log"
        if self.run(["prepare"], env, log).wait(timeout=SERIES_TIMEOUT) != 0:
            raise RuntimeError(f"publishing for the restore samples failed:\n{tail(log)}")
        self.expect(env, built, "the publishing node")
        wait_for(lambda: manifest(shared) is not None, 60, "the manifest")
        self.sizes = dict((manifest(shared) or {})["archive"])
        shutil.rmtree(folder)

        def score(env: dict[str, str]) -> float:
            port = free_port()
            return first_score([self.entry, "run"],
                               {**env, "EXTENSIBILITY_SERVER_PORT": str(port)}, port)

        def build_score() -> float:
            container = self.container()
            folder, env = self.node(app, container)
            started = time.perf_counter()
            seconds = score(env)
            wait_for(lambda: "published" in journal(env), SERIES_TIMEOUT,
                     "the background publish")
            self.published.append(time.perf_counter() - started)
            wait_for(lambda: lease_released(container), 60, "the publisher to release its lease")
            self.expect(env, built, "build-score")
            self.done(folder, container)
            return seconds

        def restore_score() -> float:
            folder, env = self.node(app, shared)
            self.gate.shut()
            try:
                seconds = score(env)
            finally:
                self.gate.open()
            self.expect(env, ["restored"], "restore-score")
            [origin] = Path(env["EXTENSIBILITY_CACHE_DIR"]).glob("envs/*/.extensibility/"
                                                               "origin.json")
            self.restore_steps.append(float(json.loads(origin.read_text())["restored"]["seconds"]))
            shutil.rmtree(folder)
            return seconds

        def one_cold() -> float:
            container = self.container()
            folder, env = self.node(app, container)
            log = folder / "prepare.log"
            started = time.perf_counter()
            if self.run(["prepare", "--", "true"], env, log).wait(timeout=SERIES_TIMEOUT):
                raise RuntimeError(f"one-cold failed:\n{tail(log)}")
            seconds = time.perf_counter() - started
            self.expect(env, built, "one-cold")
            self.done(folder, container)
            return seconds

        def nodes() -> float:
            container = self.container()
            started_nodes = [self.node(app, container) for _ in range(self.nodes)]
            started = time.perf_counter()
            processes = [self.run(["prepare", "--", "true"], env, folder / "prepare.log")
                         for folder, env in started_nodes]
            exits: dict[int, float] = {}
            while len(exits) < len(processes):
                for i, process in enumerate(processes):
                    if i not in exits and process.poll() is not None:
                        exits[i] = time.perf_counter() - started
                        if process.returncode != 0:
                            raise RuntimeError(f"a node exited {process.returncode}:\n"
                                               f"{tail(started_nodes[i][0] / 'prepare.log')}")
                if time.perf_counter() - started > SERIES_TIMEOUT:
                    raise RuntimeError(f"the nodes took more than {SERIES_TIMEOUT} s")
                time.sleep(0.05)
            seconds = max(exits.values())
            events = [journal(env) for _, env in started_nodes]
            self.builder_exits += [exits[i] for i, e in enumerate(events)
                                   if "build-complete" in e][:1]
            self.builds.append(sum(e.count("build-complete") for e in events))
            self.restores.append(sum(e.count("restored") for e in events))
            for folder, _ in started_nodes:
                shutil.rmtree(folder, ignore_errors=True)
            container.client().delete_container()
            return seconds

        return {"build-score": build_score, "restore-score": restore_score,
                "one-cold": one_cold, "nodes": nodes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sets", nargs="+", default=["ml"], choices=list(SETS))
    parser.add_argument("--nodes", type=int, default=8, help="nodes starting together")
    parser.add_argument("--chart", type=Path, help="write a PNG chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.repeat < 1:
        parser.error("--nodes must be 2 or more and --repeat 1 or more")
    samples: dict[str, dict[str, list[float]]] = {}
    details: dict[str, RemoteBench] = {}
    with tempfile.TemporaryDirectory(prefix="extensibility-bench-remote-") as tmp:
        work = Path(tmp)
        image = build_image(work / "image", work)
        bench = Bench(work, image, tiny_wheels=work)  # the scaling series are not run here
        (work / "azurite").mkdir()
        azurite = start_azurite(work / "azurite")
        try:
            for set_name in args.sets:
                index = start_index(ensure_wheels(set_name, work), work / f"index-{set_name}.log")
                gate = Gate(urlsplit(index.url).port or 80)
                try:
                    remote = RemoteBench(bench, azurite, gate, args.nodes)
                    series = interleaved(remote.series(set_name), args.repeat)
                    samples[set_name] = {
                        "build-score": series["build-score"],
                        "build-published": remote.published,
                        "restore-score": series["restore-score"],
                        "restore-step": remote.restore_steps,
                        "one-cold": series["one-cold"],
                        "nodes": series["nodes"],
                        "nodes-builder": remote.builder_exits,
                    }
                    details[set_name] = remote
                finally:
                    gate.shut()
                    index.stop()
        finally:
            azurite.stop()
    print(header(args.repeat))
    print(f"nodes: the image's `extensibility` console script, own cache and HOME each; remote: "
          f"Azurite (the Azure Storage emulator) on 127.0.0.1, so transfers cost no network "
          f"time. Package index: pypiserver behind a gate, reachable for builds and "
          f"unreachable (its port shut, connections refused) during every restore-score "
          f"sample. nodes = {args.nodes} starts of `prepare -- true` at once.\n"
          f"Derived rows (same samples): build-published = build-score's launch to its "
          f"background publish; restore-step = the restore inside restore-score (download, "
          f"check, unpack, relocate: origin.json restored.seconds); nodes-builder = when the "
          f"building node exited. The {args.nodes} nodes share this machine's "
          f"{os.cpu_count()} cores (real nodes have their own): their restores compete with "
          f"each other and with the build for CPU and disk.\n")
    print(table(samples))
    print("\n| set | published environment | value |\n|---|---|---:|")
    for set_name, remote in details.items():
        sizes = remote.sizes
        print(f"| {set_name} | archive (tar.zst, manifest archive.size) | "
              f"{sizes['size'] / 2**20:.2f} MiB ({sizes['size']} bytes) |")
        print(f"| {set_name} | unpacked (manifest archive.unpacked_bytes) | "
              f"{sizes['unpacked_bytes'] / 2**20:.2f} MiB ({sizes['unpacked_bytes']} bytes) |")
        print(f"| {set_name} | files | {sizes['files']} |")
    print("\n| set | ratio | value | target | met |\n|---|---|---:|---|---|")
    for set_name, series in samples.items():
        median = {name: statistics.median(values) for name, values in series.items()}
        for top, bottom, label, most in RATIOS:
            value = median[top] / median[bottom]
            print(f"| {set_name} | {label.format(n=args.nodes)} (medians) | {value:.2f} | "
                  f"<= {most} | {'yes' if value <= most else 'NO'} |")
        remote = details[set_name]
        print(f"| {set_name} | builds across {args.nodes} nodes (each run) | "
              f"{', '.join(map(str, remote.builds))} | 1 | "
              f"{'yes' if set(remote.builds) == {1} else 'NO'} |")
        print(f"| {set_name} | restores across {args.nodes} nodes (each run) | "
              f"{', '.join(map(str, remote.restores))} | {args.nodes - 1} | "
              f"{'yes' if set(remote.restores) == {args.nodes - 1} else 'NO'} |")
    if args.chart:
        chart(samples, args.nodes, args.chart)
        print(f"\nchart written to {args.chart}")
    print(json.dumps({"samples": samples, "nodes": args.nodes,
                      "builds": {s: r.builds for s, r in details.items()},
                      "restores": {s: r.restores for s, r in details.items()},
                      "archive": {s: r.sizes for s, r in details.items()}}), file=sys.stderr)
    return 0


def chart(samples: dict[str, dict[str, list[float]]], nodes: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"build-score": "cold build, to first score",
              "build-published": "cold build, to published (background)",
              "restore-score": "restore, to first score",
              "restore-step": "restore step alone (in restore-score)",
              "one-cold": "one cold start (prepare)",
              "nodes": f"{nodes} nodes at once (wall)",
              "nodes-builder": f"{nodes} nodes: the builder's exit"}
    colors = {"build-score": "#4472c4", "build-published": "#a5a5a5", "restore-score": "#70ad47",
              "restore-step": "#a9d18e", "one-cold": "#4472c4", "nodes": "#ed7d31",
              "nodes-builder": "#f4b183"}
    figure, axes = plt.subplots(1, len(samples), figsize=(7 * len(samples), 4), squeeze=False)
    for axis, (set_name, series) in zip(axes[0], samples.items()):
        names = [n for n in labels if n in series]
        medians = [statistics.median(series[n]) for n in names]
        spread = [[m - min(series[n]) for n, m in zip(names, medians)],
                  [max(series[n]) - m for n, m in zip(names, medians)]]
        axis.barh([labels[n] for n in names], medians, xerr=spread, capsize=3,
                  color=[colors[n] for n in names])
        axis.set_xlabel("seconds (median; bars: min to max)")
        axis.set_title(f"remote cache, {set_name} set")
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
