"""The remote environment cache against the real Azure Storage emulator (Azurite) and the
real azure-storage-blob client. "Nodes" are separate cache folders at different paths (and
HOMEs) sharing one container; builds are real (uv, offline wheels)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

import extensibility.commands.gc
from extensibility.cli import main
from extensibility.remote.archive import UnsafeArchive, pack, unpack
from tests.azurite import Container, start_azurite
from tests.conftest import StartServer, contract_env
from tests.support import ImageVenv, Index, Pause, free_port, wait_for
from tests.wheels import build_wheel

HELLO = "import sys\n\ndef main():\n    import tinydep\n    print('hello from', sys.prefix)\n"


class Deployment:
    """One app (the same on every node, as an image's is) whose request needs two wheels."""

    def __init__(self, tmp: Path, container: Container) -> None:
        self.tmp, self.container = tmp, container
        self.app = tmp / "app"
        self.wheels = self.app / "wheels"
        self.wheels.mkdir(parents=True)
        build_wheel(self.wheels, "tinydep", "1.0")
        build_wheel(self.wheels, "hello-cli", "1.0", requires=["tinydep"],
                    console_scripts={"hello-cli": "hello_cli:main"},
                    modules={"hello_cli/__init__.py": HELLO})
        (self.app / "requirements.txt").write_text(
            "--no-index\n--find-links wheels\nhello-cli==1.0\n")

    def node(self, name: str, **extra: str) -> dict[str, str]:
        """A node's environment: its own cache (at a path of its own depth) and HOME."""
        home = self.tmp / "nodes" / name
        (home / "home").mkdir(parents=True, exist_ok=True)
        return {"EXTENSIBILITY_CACHE_DIR": str(home / "var" / "cache" / name),
                "HOME": str(home / "home"), "AML_APP_ROOT": str(self.app),
                "AZUREML_ENTRY_SCRIPT": "score.py",
                "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt",
                "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1",
                "UV_CACHE_DIR": str(home / "uv-cache"), "PATH": "/usr/bin:/bin",
                **self.container.env(), **extra}


def journal(env: dict[str, str]) -> list[str]:
    path = Path(env["EXTENSIBILITY_CACHE_DIR"]) / "journal.jsonl"
    return [json.loads(line)["event"] for line in path.read_text().splitlines()] \
        if path.exists() else []


def environment(env: dict[str, str]) -> Path:
    [found] = [p.parent.parent for p in
               Path(env["EXTENSIBILITY_CACHE_DIR"]).glob("envs/*/.extensibility/complete")]
    return found


def cli(argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]
        ) -> tuple[int, str]:
    code = main(argv, env)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "extensibility", *argv], env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)


@pytest.fixture
def deployment(tmp_path: Path, container: Container) -> Deployment:
    return Deployment(tmp_path, container)


# --- build once, restore elsewhere ----------------------------------------------------

def test_a_build_published_by_one_node_is_restored_at_another_path_and_works(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = deployment.node("a"), deployment.node("node-b-with-a-longer-name")
    code, out = cli(["prepare", "--", "true"], a, capsys)
    assert code == 0, out
    assert "no published environment" in out and "published" in out
    assert journal(a) == ["build-started", "build-complete", "published"]
    blobs = deployment.container.blobs()
    [key] = {name.split("/")[1] for name in blobs if name.startswith("envs/")}
    manifest = json.loads(blobs[f"envs/{key}/manifest.json"])
    assert f"envs/{key}/{manifest['archive']['sha256']}.tar.zst" in blobs
    assert manifest["root"] == str(environment(a))

    code, out = cli(["prepare", "--", "true"], b, capsys)
    assert code == 0, out
    assert f"restored {key}" in out and "running uv" not in out  # nothing was installed
    assert journal(b) == ["restored"]
    restored = environment(b)
    assert restored != environment(a) and restored.name == key
    # the console script runs in B's environment, from B's path
    result = subprocess.run([str(restored / "bin" / "hello-cli")], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == f"hello from {restored}"
    # no file still names A's path (but the builder's own log, a record of what it did)
    old = str(environment(a)).encode()
    for path in restored.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix != ".pyc" and \
                path.name != "build.log":
            assert old not in path.read_bytes(), path
    assert os.path.realpath(restored / "bin" / "python") == os.path.realpath(sys.executable)
    # compiled by the builder, and still valid here (mtimes kept): nothing is recompiled
    assert (restored / ".extensibility" / "compiled").exists()
    pyc = sorted(restored.rglob("hello_cli/__pycache__/*.pyc"))
    assert pyc
    before = [p.stat().st_mtime_ns for p in pyc]
    subprocess.run([str(restored / "bin" / "python"), "-c", "import hello_cli"], check=True)
    assert [p.stat().st_mtime_ns for p in pyc] == before
    # and a restart on B is a plain warm hit
    code, out = cli(["plan", "--", "true"], b, capsys)
    assert "cache:     hit" in out


def test_run_serves_at_once_and_publishes_in_the_background(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import extensibility.commands.run

    class Served(BaseException):
        pass

    def served(handoff: object, umask: int | None = None) -> None:
        raise Served

    monkeypatch.setattr(extensibility.commands.run, "execute", served)
    a = deployment.node("a")
    with pytest.raises(Served):
        main(["run", "--", "true"], a)
    out = capsys.readouterr().err
    assert "publishing" in out and "in the background" in out
    wait_for(lambda: "published" in journal(a), 120, "the background publish")
    assert (environment(a) / ".extensibility" / "compiled").exists()
    code, out = cli(["ls", "--remote"], a, capsys)
    assert code == 0 and environment(a).name in out and "published" in out


# --- one build across nodes -----------------------------------------------------------

@pytest.mark.slow  # processes meeting on a lease: once, on the main Python
def test_six_nodes_starting_together_build_once(deployment: Deployment, tmp_path: Path) -> None:
    nodes = [deployment.node(f"n{i}") for i in range(6)]
    processes = [spawn(["prepare", "--", "true"], env, tmp_path / f"n{i}.log")
                 for i, env in enumerate(nodes)]
    for i, process in enumerate(processes):
        assert process.wait(timeout=600) == 0, (tmp_path / f"n{i}.log").read_text()
    events = [journal(env) for env in nodes]
    assert sum(e.count("build-complete") for e in events) == 1, events
    assert sum(e.count("restored") for e in events) == 5, events
    assert len({environment(env).name for env in nodes}) == 1
    waited = [(tmp_path / f"n{i}.log").read_text() for i in range(6)]
    assert any("is being built by" in text for text in waited)  # who holds it is said


@pytest.mark.slow  # processes meeting on a lease: once, on the main Python
def test_an_upload_cut_short_leaves_no_manifest_and_a_waiting_node_takes_over(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pause = Pause(tmp_path / "pause", "manifest")
    a = deployment.node("a", **pause.env)
    b = deployment.node("b")
    builder = spawn(["prepare", "--", "true"], a, tmp_path / "a.log")
    pause.wait(builder)  # A built, uploaded its archive, holds the lease: no manifest yet
    blobs = deployment.container.blobs()
    assert [n for n in blobs if n.endswith(".tar.zst")]
    assert not [n for n in blobs if n.endswith("manifest.json")]
    waiter = spawn(["prepare", "--", "true"], b, tmp_path / "b.log")
    wait_for(lambda: "is being built by" in (tmp_path / "b.log").read_text(), 120,
             "B to wait for A")
    assert f"(pid {builder.pid}" in (tmp_path / "b.log").read_text()  # who holds it
    os.killpg(builder.pid, signal.SIGKILL)  # A dies with its lease: it expires
    builder.wait()
    assert waiter.wait(timeout=300) == 0, (tmp_path / "b.log").read_text()
    assert journal(b) == ["build-started", "build-complete", "published"]
    c = deployment.node("c")
    code, out = cli(["prepare", "--", "true"], c, capsys)
    assert code == 0 and journal(c) == ["restored"], out
    # A's archive, whose manifest was never written, is removed by gc after an hour
    code, out = cli(["gc", "--remote", "--dry-run"], c, capsys)
    assert "would remove 0" in out, out
    monkeypatch.setattr(extensibility.commands.gc, "UNFINISHED_AFTER", 0.0)
    code, out = cli(["gc", "--remote"], c, capsys)
    assert code == 0 and "archives whose upload never finished" in out, out
    blobs = deployment.container.blobs()
    published = json.loads(next(v for n, v in blobs.items() if n.endswith("manifest.json")))
    assert sorted(n for n in blobs if n.startswith("envs/")) == sorted(
        [f"envs/{published['key']}/manifest.json",
         f"envs/{published['key']}/{published['archive']['sha256']}.tar.zst"])
    assert cli(["prepare", "--", "true"], deployment.node("d"), capsys)[0] == 0


@pytest.mark.slow  # processes meeting on a lease: once, on the main Python
def test_a_node_that_waited_too_long_builds_here(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    pause = Pause(tmp_path / "pause", "overlay")
    builder = spawn(["prepare", "--", "true"], deployment.node("a", **pause.env),
                    tmp_path / "a.log")
    pause.wait(builder)  # A holds the lease
    b = deployment.node("b", EXTENSIBILITY_REMOTE_WAIT="1")
    try:
        code, out = cli(["prepare", "--", "true"], b, capsys)
    finally:
        pause.release()
    assert code == 0, out
    assert "waited 1 s for" in out and "building here" in out
    assert journal(b) == ["build-started", "build-complete"]  # not published: A does
    assert builder.wait(timeout=300) == 0


@pytest.mark.slow  # a lease nobody renews is noticed after STALE_SECONDS of the waiter's clock
def test_a_lease_nobody_renews_is_stale_broken_and_taken_over(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
) -> None:
    from extensibility.remote.cache import STALE_SECONDS

    a = deployment.node("a")
    assert cli(["prepare", "--", "true"], a, capsys)[0] == 0
    blobs = deployment.container.blobs()
    [name] = [n for n in blobs if n.endswith("manifest.json")]
    key = name.split("/")[1]
    client = deployment.container.client()
    client.get_blob_client(f"deployments/one/{name}").delete_blob()  # unpublished again
    # an infinite lease whose holder is gone: its record never changes, and says nothing true
    lock = client.get_blob_client(f"deployments/one/locks/{key}")
    lease = lock.acquire_lease(lease_duration=-1)
    lock.set_blob_metadata({"host": "gone-node", "pid": "1", "since": "0"}, lease=lease)
    wait = STALE_SECONDS * 3  # the old default waited it out, then built without publishing
    b = deployment.node("b", EXTENSIBILITY_REMOTE_WAIT=str(wait))
    code, out = cli(["prepare", "--", "true"], b, capsys)
    assert code == 0, out
    assert "gone-node (pid 1, for an unknown time)" in out, out
    assert "was not renewed for" in out and "it is stale; breaking it" in out, out
    assert f"waited {wait} s" not in out
    assert journal(b) == ["build-started", "build-complete", "published"]  # took it over
    code, out = cli(["prepare", "--", "true"], deployment.node("c"), capsys)
    assert code == 0 and journal(deployment.node("c")) == ["restored"], out


def test_the_default_wait_fits_a_liveness_probe() -> None:
    from extensibility.settings import Settings

    # Azure ML's default liveness probe gives a container 10 s + 30 x 10 s: the wait leaves
    # a local build most of it
    assert Settings.from_environ({}).remote_wait <= 150


# --- faults never stop a start --------------------------------------------------------

def failing_handler(status: int) -> type[BaseHTTPRequestHandler]:
    """Answers every request with `status` (503 also says when to come back, as Azure does
    when it throttles)."""

    class Failing(BaseHTTPRequestHandler):
        def _fail(self) -> None:
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _fail

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Failing


@contextlib.contextmanager
def failing_store(status: int) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), failing_handler(status))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1/c"
    finally:
        server.shutdown()


@pytest.fixture
def hung_store() -> Iterator[str]:
    """A store that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # the kernel completes the handshakes; nobody reads
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/devstoreaccount1/c"
    listener.close()


FAULTS = ["stopped", "answering 500", "throttling (503)", "refusing the credentials", "hung"]


@pytest.mark.parametrize("fault", FAULTS)
def test_an_unusable_store_means_one_warning_and_a_local_build(
    fault: str, deployment: Deployment, request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack = contextlib.ExitStack()
    request.addfinalizer(stack.close)
    if fault == "stopped":  # a real emulator, that served this deployment, stops
        emulator = start_azurite(deployment.tmp / "own-azurite")
        url = f"{emulator.endpoint}/gone"
        writer = deployment.node("writer", EXTENSIBILITY_REMOTE_CACHE=url,
                                 AZURE_STORAGE_CONNECTION_STRING=emulator.connection_string)
        assert cli(["prepare", "--", "true"], writer, capsys)[0] == 0
        assert journal(writer)[-1] == "published"
        emulator.stop()
        env = deployment.node("a", EXTENSIBILITY_REMOTE_CACHE=url,
                              AZURE_STORAGE_CONNECTION_STRING=emulator.connection_string)
    elif fault == "refusing the credentials":  # a SAS token whose signature is wrong: 403
        url, signature = deployment.container.sas_url()
        wrong = quote(("A" if signature[0] != "A" else "B") + signature[1:], safe="")
        env = {**deployment.node("a"), "EXTENSIBILITY_REMOTE_CACHE":
               re.sub(r"([?&]sig=)[^&]+", rf"\g<1>{wrong}", url)}
        assert env["EXTENSIBILITY_REMOTE_CACHE"] != url
        del env["AZURE_STORAGE_CONNECTION_STRING"]
    elif fault == "hung":
        env = deployment.node("a", EXTENSIBILITY_REMOTE_CACHE=request.getfixturevalue(
            "hung_store"))
    else:
        status = 500 if fault == "answering 500" else 503
        env = deployment.node("a", EXTENSIBILITY_REMOTE_CACHE=stack.enter_context(
            failing_store(status)))
    code, out = cli(["prepare", "--", "true"], env, capsys)
    assert code == 0, out
    warnings = [line for line in out.splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "going on without the remote cache" in warnings[0], out
    assert journal(env) == ["build-started", "build-complete"]
    if fault == "refusing the credentials":
        assert "403" in warnings[0] and wrong not in out and wrong[5:20] not in out
    # bounded: the warning comes within seconds, not after the SDK's default retries (which
    # wait 15 s and more between attempts); the bound is loose for a busy machine
    elapsed = float(warnings[0].split()[1].rstrip("s"))
    assert elapsed < 30, out


class TrickleProxy:
    """A TCP proxy in front of Azurite: on a connection that asked for an archive, the
    answers come 512 bytes at a time, 0.2 s apart: every read well within the client's read
    timeout, the whole far slower than any deadline the test sets."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, upstream]
            archive = threading.Event()
            for source, target, answers in ((client, upstream, False),
                                            (upstream, client, True)):
                threading.Thread(target=self._pump, args=(source, target, answers, archive),
                                 daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, answers: bool,
              archive: threading.Event) -> None:
        import time

        with contextlib.suppress(OSError):
            while True:
                data = source.recv(512 if answers else 65536)
                if not data:
                    break
                if not answers and b".tar.zst" in data.split(b"\r\n", 1)[0]:
                    archive.set()
                if answers and archive.is_set():
                    time.sleep(0.2)
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for connection in self.sockets:
            with contextlib.suppress(OSError):
                connection.close()


def test_a_download_that_trickles_is_abandoned_at_its_deadline_and_built_here(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import extensibility.remote.azure

    a = deployment.node("a")
    assert cli(["prepare", "--", "true"], a, capsys)[0] == 0
    proxy = TrickleProxy(deployment.container.azurite.port)
    try:
        url = deployment.container.url.replace(f":{deployment.container.azurite.port}/",
                                               f":{proxy.port}/")
        monkeypatch.setattr(extensibility.remote.azure, "DOWNLOAD_SECONDS", 1.0)
        b = deployment.node("b", EXTENSIBILITY_REMOTE_CACHE=url)
        code, out = cli(["prepare", "--", "true"], b, capsys)
    finally:
        proxy.close()
    assert code == 0, out
    assert "not finished within 1 s" in out and "going on without the remote cache" in out, out
    assert journal(b) == ["build-started", "build-complete"]


def test_a_corrupted_archive_is_not_used_and_is_replaced(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
) -> None:
    a, b, c = (deployment.node(n) for n in "abc")
    assert cli(["prepare", "--", "true"], a, capsys)[0] == 0
    blobs = deployment.container.blobs()
    [archive] = [n for n in blobs if n.endswith(".tar.zst")]
    damaged = bytearray(blobs[archive])
    damaged[len(damaged) // 2] ^= 0xFF
    deployment.container.write(archive, bytes(damaged))
    code, out = cli(["prepare", "--", "true"], b, capsys)
    assert code == 0, out
    assert "does not match its manifest" in out and "not used" in out
    assert journal(b) == ["build-started", "build-complete", "published"]  # replaced it
    code, out = cli(["prepare", "--", "true"], c, capsys)
    assert code == 0 and journal(c) == ["restored"], out


def test_a_tampered_manifest_is_not_used_and_a_good_one_is_never_overwritten(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = deployment.node("a"), deployment.node("b")
    assert cli(["prepare", "--", "true"], a, capsys)[0] == 0
    blobs = deployment.container.blobs()
    [name] = [n for n in blobs if n.endswith("manifest.json")]
    good = json.loads(blobs[name])
    tampered = {**good, "document": {**good["document"], "installer": "evil"}}
    deployment.container.write(name, json.dumps(tampered).encode())
    code, out = cli(["prepare", "--", "true"], b, capsys)
    assert code == 0 and "its key document is not this request's" in out, out
    assert "restored" not in journal(b)
    # a node whose restore is fine never replaces: push on A finds it published
    deployment.container.write(name, json.dumps(good).encode())
    code, out = cli(["push", "--", "true"], a, capsys)
    assert code == 0 and "published already" in out, out


# --- unpacking trusts nothing ---------------------------------------------------------

def crafted(members: list[tarfile.TarInfo]) -> io.BytesIO:
    import zstandard

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            data = b"x" * member.size if member.isreg() else None
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return io.BytesIO(zstandard.ZstdCompressor().compress(raw.getvalue()))


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0
           ) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, link, size, 0o644
    return info


@pytest.mark.parametrize("members, why", [
    ([member("../escape", size=1)], "climbing"),
    ([member("/etc/evil", size=1)], "absolute"),
    ([member("lib", tarfile.SYMTYPE, "/etc")], "outside"),
    ([member("lib", tarfile.SYMTYPE, "../../..")], "outside"),
    ([member("a", tarfile.DIRTYPE), member("a/l", tarfile.SYMTYPE, ".."),
      member("a/l/x", size=1)], "under the link"),
    ([member("null", tarfile.CHRTYPE)], "device file"),
    ([member("fifo", tarfile.FIFOTYPE)], "named pipe"),
    ([member("big", size=10)], "more bytes"),
])
def test_a_crafted_archive_is_refused(members: list[tarfile.TarInfo], why: str,
                                      tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive, match=why):
        unpack(crafted(members), tmp_path / "env", max_files=10, max_bytes=5)
    assert not (tmp_path / "escape").exists() and not Path("/etc/evil").exists()


def test_a_crafted_archive_with_a_matching_checksum_is_refused_by_a_node(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    import hashlib

    a, b = deployment.node("a"), deployment.node("b")
    assert cli(["prepare", "--", "true"], a, capsys)[0] == 0
    blobs = deployment.container.blobs()
    [name] = [n for n in blobs if n.endswith("manifest.json")]
    manifest = json.loads(blobs[name])
    evil = crafted([member("bin", tarfile.DIRTYPE), member("bin/python", tarfile.SYMTYPE,
                                                             "/bin/sh")]).getvalue()
    sha = hashlib.sha256(evil).hexdigest()
    manifest["archive"].update(sha256=sha, size=len(evil))
    deployment.container.write(f"envs/{manifest['key']}/{sha}.tar.zst", evil)
    deployment.container.write(name, json.dumps(manifest).encode())
    code, out = cli(["prepare", "--", "true"], b, capsys)
    assert code == 0 and "is refused" in out and "outside the environment" in out, out
    assert journal(b) == ["build-started", "build-complete", "published"]


FORGED = "node-a\nextensibility   0.001s remote: restored FAKE from a trusted node\x1b[2J"


@pytest.mark.parametrize("members, why", [
    ([member("a" * 300 + ".pth", size=1)], "longer than 255 bytes"),
    ([member("site/x.pth", size=1)], "not in the archive before it"),
    ([member("d0", tarfile.DIRTYPE), member("d0/d1", tarfile.DIRTYPE),
      member("d0/d1/d2", tarfile.DIRTYPE), member("d0/d1/d2/l", tarfile.SYMTYPE, "../../.."),
      member("top", tarfile.LNKTYPE, "d0/d1/d2/l"), member("top/x.pth", size=1)],
     "not a file unpacked before it"),
], ids=["long name", "no folder", "hard link out"])
def test_a_malformed_archive_is_one_warning_a_local_build_and_replaced(
    members: list[tarfile.TarInfo], why: str, deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import hashlib

    a, b, c = (deployment.node(n) for n in "abc")
    assert cli(["prepare", "--", "true"], a, capsys)[0] == 0
    blobs = deployment.container.blobs()
    [name] = [n for n in blobs if n.endswith("manifest.json")]
    manifest = json.loads(blobs[name])
    bad = crafted(members).getvalue()
    sha = hashlib.sha256(bad).hexdigest()
    manifest["archive"].update(sha256=sha, size=len(bad))
    manifest["builder"]["host"] = FORGED  # read from outside: escaped on the log line
    deployment.container.write(f"envs/{manifest['key']}/{sha}.tar.zst", bad)
    deployment.container.write(name, json.dumps(manifest).encode())
    code, out = cli(["prepare", "--", "true"], b, capsys)
    assert code == 0, out  # never exit 95
    [warning] = [line for line in out.splitlines() if "WARNING" in line]
    assert "is refused" in warning and why in warning, out
    assert journal(b) == ["build-started", "build-complete", "published"]
    assert not list(Path(b["EXTENSIBILITY_CACHE_DIR"]).parent.rglob("x.pth"))
    assert "\nextensibility   0.001s remote: restored FAKE" not in out and "\x1b" not in out
    assert "node-a\\nextensibility" in out and "\\x1b[2J" in out, out
    # the bad manifest was replaced through its etag: the next node restores
    code, out = cli(["prepare", "--", "true"], c, capsys)
    assert code == 0 and journal(c) == ["restored"], out


def test_pack_keeps_links_inside_and_lists_the_interpreter(tmp_path: Path) -> None:
    root = tmp_path / "env"
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / "bin" / "python3").symlink_to("python")
    (root / "lib64").symlink_to("lib")
    (root / "lib" / "m.py").write_text("x = 1\n")
    (root / "lib" / "tests" / "__pycache__").mkdir(parents=True)
    (root / "lib" / "tests" / "t.py").write_text("")
    (root / "lib" / "tests" / "__pycache__" / "t.cpython-311.pyc").write_bytes(b"")
    with open(tmp_path / "a.tar.zst", "w+b") as handle:
        packed = pack(root, handle)
        handle.seek(0)
        count = unpack(handle, tmp_path / "copy", max_files=packed.files,
                       max_bytes=packed.unpacked)
    assert packed.external_links == {"bin/python": sys.executable}
    # bin, bin/python3, lib, lib/m.py, lib/tests, its t.py and __pycache__, lib64: not the
    # test suite's bytecode (never imported by a server)
    assert count == packed.files == 8
    assert (tmp_path / "copy" / "lib" / "tests" / "__pycache__").is_dir()
    assert not list((tmp_path / "copy" / "lib" / "tests" / "__pycache__").iterdir())
    assert os.readlink(tmp_path / "copy" / "lib64") == "lib"
    assert (tmp_path / "copy" / "lib" / "m.py").stat().st_mtime == \
        (root / "lib" / "m.py").stat().st_mtime


# --- credentials ----------------------------------------------------------------------

def test_the_sas_token_appears_in_no_output_file_or_blob(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
) -> None:
    url, signature = deployment.container.sas_url()
    a = {**deployment.node("a"), "EXTENSIBILITY_REMOTE_CACHE": url}
    b = {**deployment.node("b"), "EXTENSIBILITY_REMOTE_CACHE": url}
    del a["AZURE_STORAGE_CONNECTION_STRING"], b["AZURE_STORAGE_CONNECTION_STRING"]
    outputs = [cli(["prepare", "--", "true"], a, capsys), cli(["prepare", "--", "true"], b, capsys),
               cli(["plan", "--json", "--", "true"], b, capsys),
               cli(["ls", "--remote"], b, capsys), cli(["doctor", "--", "true"], b, capsys)]
    assert journal(b) == ["restored"], outputs[1]
    raw = re.search(r"[?&]sig=([^&]+)", url)
    assert raw is not None
    # the signature as the URL carries it, decoded, and encoded every usual way
    secrets = {raw.group(1), signature, quote(signature, safe=""), quote(signature)}
    for _, out in outputs:
        assert not any(s in out for s in secrets), out
    for env in (a, b):
        for path in Path(env["EXTENSIBILITY_CACHE_DIR"]).rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert not any(s.encode() in path.read_bytes() for s in secrets), path
    for name, data in deployment.container.blobs().items():
        assert not any(s.encode() in data for s in secrets), name


def test_a_user_and_password_in_the_url_appear_in_no_output_file_or_blob(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
) -> None:
    password = "pa55-w0rd-in-the-url"
    url = deployment.container.url.replace("http://", f"http://builder:{password}@")
    a = deployment.node("a", EXTENSIBILITY_REMOTE_CACHE=url)
    b = deployment.node("b", EXTENSIBILITY_REMOTE_CACHE=url)
    outputs = [cli(["prepare", "--", "true"], a, capsys), cli(["prepare", "--", "true"], b, capsys),
               cli(["ls", "--remote"], b, capsys), cli(["doctor", "--", "true"], b, capsys),
               cli(["doctor", "--json", "--", "true"], b, capsys)]
    assert journal(b) == ["restored"], outputs[1]
    assert "remote cache: http://127.0.0.1" in outputs[3][1]  # where, without who
    for code, out in outputs:
        assert code == 0 and password not in out and "builder:" not in out, out
    for env in (a, b):
        for path in Path(env["EXTENSIBILITY_CACHE_DIR"]).rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert password.encode() not in path.read_bytes(), path
    [origin] = Path(b["EXTENSIBILITY_CACHE_DIR"]).glob("envs/*/.extensibility/origin.json")
    assert json.loads(origin.read_text())["restored"]["from"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("argv", [["run", "--", "true"], ["plan", "--", "true"],
                                  ["doctor", "--", "true"], ["ls", "--remote"]])
@pytest.mark.parametrize("mistake", [
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={secret};"
    "EndpointSuffix=core.windows.net",
    "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&"
    "sig={secret}",
    "https://acct.blob.core.windows.net/c;AccountKey={secret}",
    "https://acct.blob.core.windows.net/sig={secret}/c",
    "ftp://user:{secret}@acct.blob.core.windows.net/c",
], ids=["connection string", "sas connection string", "key in path", "sig in path",
        "not http"])
def test_a_secret_put_in_the_remote_variable_by_mistake_is_never_printed(
    argv: list[str], mistake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "Zm9vYmFyU2VjcmV0S2V5MTIzNDU2Nzg5MA=="
    (tmp_path / "app").mkdir()
    env = {"EXTENSIBILITY_CACHE_DIR": str(tmp_path / "cache"), "AML_APP_ROOT":
           str(tmp_path / "app"), "PATH": "/usr/bin:/bin",
           "EXTENSIBILITY_REMOTE_CACHE": mistake.format(secret=secret)}
    code, out = cli(argv, env, capsys)
    assert code == 93, out
    assert "EXTENSIBILITY_REMOTE_CACHE is not the URL of a blob container" in out
    assert secret not in out and secret[:12] not in out, out


# --- the commands ---------------------------------------------------------------------

def test_pull_plan_ls_and_gc_remote(deployment: Deployment,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    a, b = deployment.node("a"), deployment.node("b")
    code, out = cli(["pull", "--", "true"], b, capsys)
    assert code == 91 and "prepare --publish" in out, out
    code, out = cli(["plan", "--json", "--", "true"], b, capsys)
    assert json.loads(out[:out.rindex("}") + 1])["state"] == "miss"
    assert cli(["prepare", "--", "true"], a, capsys)[0] == 0
    code, out = cli(["plan", "--json", "--", "true"], b, capsys)
    plan = json.loads(out[:out.rindex("}") + 1])
    assert plan["state"] == "remote hit" and plan["cache"].startswith("remote hit"), plan
    code, out = cli(["pull", "--", "true"], b, capsys)
    assert code == 0 and "restored" in out and journal(b) == ["restored"], out
    code, out = cli(["ls", "--remote", "--json"], b, capsys)
    [row] = json.loads(out[:out.rindex("]") + 1])
    assert row["status"] == "published" and row["key"] == environment(a).name
    code, out = cli(["gc", "--remote", "--max-size", "1", "--dry-run"], b, capsys)
    assert code == 0 and "would remove 1 published" in out, out
    code, out = cli(["gc", "--remote", "--max-age", "0"], b, capsys)
    assert code == 0 and "removed 1 published" in out, out
    assert deployment.container.blobs() .keys() <= {f"locks/{row['key']}"}
    code, out = cli(["pull", "--", "true"], deployment.node("c"), capsys)
    assert code == 91, out


def test_doctor_checks_the_remote_and_a_dead_one_fails_pull_with_90(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = cli(["doctor", "--", "true"], deployment.node("a"), capsys)
    assert "remote cache" in out and "writable" in out, out
    dead = deployment.node("b", EXTENSIBILITY_REMOTE_CACHE=(
        f"http://127.0.0.1:{free_port()}/devstoreaccount1/c"))
    code, out = cli(["doctor", "--", "true"], dead, capsys)
    assert code == 1 and "FAIL" in out and "remote cache" in out, out
    code, out = cli(["pull", "--", "true"], dead, capsys)
    assert code == 90, out


# --- the real scoring server ----------------------------------------------------------

def test_node_b_serves_what_node_a_built_with_the_index_stopped(
    image: ImageVenv, app: Path, own_index: Index, start_server: StartServer, tmp_path: Path,
    container: Container,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {own_index.url}\ngreeting==1.0\n")
    node_a = contract_env(tmp_path, image, app, tmp_path / "a" / "cache",
                          AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt", **container.env())
    a = start_server(image, node_a)
    assert a.score({}).json() == {"greeting": "HELLO WORLD"}
    wait_for(lambda: "published" in journal(node_a), 180, "node A's background publish")
    a.process.terminate()
    a.process.wait(timeout=30)

    own_index.stop()  # nothing can be installed from here on
    node_b = contract_env(tmp_path, image, app, tmp_path / "elsewhere" / "b" / "cache",
                          AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt", **container.env())
    b = start_server(image, node_b)
    response = b.score({})
    assert response.status_code == 200 and response.json() == {"greeting": "HELLO WORLD"}
    assert "restored" in b.output() and "running" not in b.output(), b.output()
    assert journal(node_b) == ["restored"]
    assert environment(node_b).name == environment(node_a).name


def test_a_manifest_with_fields_of_the_wrong_kind_is_described_not_crashed_on() -> None:
    from extensibility.remote.backend import Blob
    from extensibility.remote.inventory import RemoteEntry
    from extensibility.remote.manifest import Manifest

    assert Manifest({"builder": "a string"}).builder_host == "?"
    entry = RemoteEntry("k")
    entry.manifest = {"builder": ["x"], "archive": "not a mapping"}
    entry.blobs = [Blob("envs/k/manifest.json", 10, 0.0), Blob("envs/k/ab.tar.zst", 5, 0.0)]
    assert entry.row()["builder"] is None
    assert [b.name for b in entry.strays()] == ["envs/k/ab.tar.zst"]


def test_without_the_remote_extra_a_start_says_so_once_and_builds(
    deployment: Deployment, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    env = deployment.node("a")
    code, out = cli(["prepare", "--", "true"], env, capsys)
    assert code == 0, out
    warnings = [line for line in out.splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "inference-extensibility[remote]" in warnings[0], out
    assert journal(env) == ["build-started", "build-complete"]
    assert deployment.container.blobs() == {}


def test_what_a_lease_holder_wrote_is_escaped_and_an_absurd_duration_not_repeated() -> None:
    import time

    from extensibility.remote.cache import describe_holder

    forged = {"host": "node\nextensibility 0.0s remote: restored\x1b[2J", "pid": "7\r",
              "since": "0"}
    assert describe_holder(forged) == ("node\\nextensibility 0.0s remote: restored\\x1b[2J "
                                       "(pid 7\\r, for an unknown time)")
    assert describe_holder({"host": "b", "pid": "9", "since": str(time.time() + 3600)}) == \
        "b (pid 9, for an unknown time)"  # from the future
    assert describe_holder({"host": "b", "pid": "9", "since": "nan"}).endswith("unknown time)")
    assert re.fullmatch(r"b \(pid 9, for \d+ s\)",
                        describe_holder({"host": "b", "pid": "9", "since": str(time.time())}))


def test_a_connection_strings_secrets_are_redacted_wherever_they_appear() -> None:
    from extensibility.redact import redact_url

    text = ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=S3cr3t+Key/==;"
            "EndpointSuffix=core.windows.net and SharedAccessSignature=sv=2022&sig=AbC%2B")
    shown = redact_url(text)
    assert "S3cr3t" not in shown and "AbC" not in shown and "AccountName=acct" in shown
