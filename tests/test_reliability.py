"""Concurrent starts, crashes, signals, network faults, full disks, clean-up, damage.

Real processes, real file locks, real signals, a real index behind a fault-injecting proxy.
Installs are counted through the store's own journal, never by timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import contract_env, run_entrypoint
from tests.faultproxy import FaultProxy
from tests.support import ImageVenv, Index, Pause, complete_envs, wait_for
from tests.wheels import build_wheel

pytestmark = pytest.mark.slow
PROBE = "import greeting; print(greeting.greet('ok'))"


@pytest.fixture
def proxy(index: Index) -> Iterator[FaultProxy]:
    with FaultProxy(index.url.removesuffix("/simple/")) as running:
        yield running


def journal(cache: Path) -> list[dict[str, object]]:
    path = cache / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def events(cache: Path, event: str) -> list[dict[str, object]]:
    return [r for r in journal(cache) if r["event"] == event]


def env_for(tmp_path: Path, image: ImageVenv, app: Path, cache: Path, url: str,
            request: str = "greeting", **extra: str) -> dict[str, str]:
    (app / "requirements.txt").write_text(f"--index-url {url}\n{request}\n")
    return contract_env(tmp_path, image, app, cache,
                        AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt", **extra)


def start(image: ImageVenv, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(image.bin / "extensibility"), "run", "--", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_stderr_until(process: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    """Read the start's stderr into `seen` until a line contains `text`."""
    assert process.stderr is not None
    for line in process.stderr:
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"the start ended without printing {text!r}:\n{''.join(seen)}")


# --- concurrent starts ------------------------------------------------------------------

def test_concurrent_starts_install_once(image: ImageVenv, app: Path, cache: Path, index: Index,
                                        tmp_path: Path) -> None:
    """One start is held inside its build (the lock taken) while three more arrive: they
    meet it for certain, wait, and are served by its build."""
    env = env_for(tmp_path, image, app, cache, index.url)
    pause = Pause(tmp_path / "pause", "overlay")
    builder = start(image, {**env, **pause.env}, "python", "-c", PROBE)
    pause.wait(builder)
    replicas, seen = [], []
    for i in range(3):  # separate "containers": their own temp folders, one cache volume
        own_tmp = tmp_path / f"replica-{i}"
        own_tmp.mkdir()
        replica = start(image, {**env, "TMPDIR": str(own_tmp)}, "python", "-c", PROBE)
        lines: list[str] = []
        read_stderr_until(replica, "waiting for pid", lines)  # announced at once
        replicas.append(replica)
        seen.append(lines)
    pause.release()
    for process, before in zip([builder, *replicas], [[], *seen]):
        out, err = process.communicate(timeout=300)
        err = "".join(before) + err
        assert process.returncode == 0, err
        assert out.strip() == "HELLO OK"
    assert len(events(cache, "build-started")) == 1
    assert len(events(cache, "build-complete")) == 1


def test_different_keys_build_in_parallel(image: ImageVenv, tmp_path: Path, cache: Path,
                                          index: Index) -> None:
    """A build held inside its lock does not stop another key's build from completing."""
    apps = {}
    for name in ("greeting", "hello-cli"):
        apps[name] = tmp_path / name
        apps[name].mkdir()
    pause = Pause(tmp_path / "pause", "overlay")
    held = start(image, {**env_for(tmp_path, image, apps["greeting"], cache, index.url),
                         **pause.env}, "true")
    pause.wait(held)
    other = run_entrypoint(image, env_for(tmp_path, image, apps["hello-cli"], cache, index.url,
                                          "hello-cli"), "run", "--", "true")
    assert other.returncode == 0, other.stderr
    assert len(events(cache, "build-complete")) == 1 and held.poll() is None
    pause.release()
    assert held.wait(timeout=300) == 0
    assert len(events(cache, "build-complete")) == 2


def test_lock_wait_has_a_timeout(image: ImageVenv, app: Path, cache: Path, index: Index,
                                 tmp_path: Path) -> None:
    env = env_for(tmp_path, image, app, cache, index.url, EXTENSIBILITY_LOCK_TIMEOUT="1")
    key = json.loads(run_entrypoint(image, env, "plan", "--json", "--", "true").stdout)["key"]
    (cache / "locks").mkdir(parents=True)
    holder = subprocess.Popen(
        [str(image.python), "-c", "import filelock, sys, time\n"
         "lock = filelock.FileLock(sys.argv[1]); lock.acquire()\n"
         "print('held', flush=True); time.sleep(60)",
         str(cache / "locks" / f"{key}.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = run_entrypoint(image, env, "run", "--", "true")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 94, result.stderr
    assert "waited 1 s for another start" in result.stderr
    assert "EXTENSIBILITY_LOCK_TIMEOUT" in result.stderr


# --- crashes and signals ----------------------------------------------------------------

def wait_for_installer(process: subprocess.Popen[str]) -> int:
    found: list[int] = []

    def installer_running() -> bool:
        found[:] = children(process.pid)
        return bool(found)

    wait_for(installer_running, 60, "the installer to start")
    return found[0]


@pytest.mark.parametrize("phase", ["overlay", "install", "publish"])
def test_a_killed_build_is_never_used_and_the_next_start_rebuilds(
    phase: str, image: ImageVenv, app: Path, cache: Path, proxy: FaultProxy, tmp_path: Path,
) -> None:
    env = env_for(tmp_path, image, app, cache, proxy.url)
    if phase == "install":
        proxy.faults.mode = "hold"  # the installer waits on the index until the test is done
        builder = start(image, env, "python", "-c", PROBE)
        installer = wait_for_installer(builder)
    else:
        pause = Pause(tmp_path / "pause", phase)
        builder = start(image, {**env, **pause.env}, "true")
        pause.wait(builder)
    builder.send_signal(signal.SIGKILL)
    builder.wait(timeout=30)
    if phase == "install":  # the installer dies with its parent, it is not orphaned
        wait_for(lambda: not alive(installer), 10, "the orphaned installer to die")
    assert list(cache.glob("envs/*")) and not complete_envs(cache)

    proxy.faults.mode = "pass"
    proxy.faults.released.set()
    result = run_entrypoint(image, env, "run", "--", "python", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HELLO OK"
    assert "removed the leftover of an interrupted or damaged build" in result.stderr
    assert len(events(cache, "build-started")) == 2
    assert len(events(cache, "build-complete")) == 1


def test_sigterm_during_install_stops_the_installer_and_cleans_up(
    image: ImageVenv, app: Path, cache: Path, proxy: FaultProxy, tmp_path: Path,
) -> None:
    proxy.faults.mode = "hold"  # the installer waits on the index until the test is done
    builder = start(image, env_for(tmp_path, image, app, cache, proxy.url), "true")
    installer = wait_for_installer(builder)
    builder.send_signal(signal.SIGTERM)
    _, err = builder.communicate(timeout=60)
    assert builder.returncode == 143, err
    assert "stopped by signal 15" in err and "Traceback" not in err
    wait_for(lambda: not alive(installer), 10, "the installer to stop")
    assert not list(cache.glob("envs/*"))
    assert [r["error"] for r in events(cache, "build-failed")] == ["BuildInterrupted"]


def test_a_damaged_environment_is_rebuilt_not_used(image: ImageVenv, app: Path, cache: Path,
                                                   index: Index, tmp_path: Path) -> None:
    env = env_for(tmp_path, image, app, cache, index.url)
    assert run_entrypoint(image, env, "prepare", "--", "python", "-c", PROBE).returncode == 0
    [environment] = complete_envs(cache)
    (environment / "bin" / "python").unlink()
    result = run_entrypoint(image, env, "run", "--", "python", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert "is damaged (its interpreter is missing): rebuilding" in result.stderr
    assert len(events(cache, "build-complete")) == 2


# --- network faults ---------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "message"), [
    ("error", "503"),
    ("drop", ""),
    ("slow", "did not finish within 3 s"),
    ("down", ""),
])
def test_index_faults_fail_cleanly_with_exit_95(
    mode: str, message: str, image: ImageVenv, app: Path, cache: Path, proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    url = proxy.url
    if mode == "down":
        with FaultProxy("http://127.0.0.1:9") as closed:
            url = closed.url
        # the proxy is shut: its port refuses connections
    proxy.faults.mode, proxy.faults.delay = mode, 10.0
    env = env_for(tmp_path, image, app, cache, url, EXTENSIBILITY_INSTALL_TIMEOUT="3",
                  EXTENSIBILITY_RETRIES="1")
    started = time.monotonic()
    result = run_entrypoint(image, env, "run", "--", "true", timeout=120)
    assert result.returncode == 95, result.stderr
    assert "installation failed" in result.stderr and "Traceback" not in result.stderr
    assert message in result.stderr
    assert "127.0.0.1" in result.stderr  # the index is named
    assert not list(cache.glob("envs/*"))
    assert time.monotonic() - started < 90


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_transient_index_errors_are_retried(installer: str, image: ImageVenv, app: Path,
                                            cache: Path, proxy: FaultProxy,
                                            tmp_path: Path) -> None:
    proxy.faults.mode, proxy.faults.failures = "flaky", 2
    env = env_for(tmp_path, image, app, cache, proxy.url, EXTENSIBILITY_INSTALLER=installer)
    result = run_entrypoint(image, env, "run", "--", "python", "-c", PROBE, timeout=180)
    assert result.returncode == 0, result.stderr
    assert proxy.faults.failures <= 0  # the faults happened, and were retried past


# --- full disk --------------------------------------------------------------------------

@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_cleanly_and_keeps_existing_environments(
    image: ImageVenv, app: Path, small_volume: Path, packages: Path, tmp_path: Path,
) -> None:
    cache = small_volume / "cache"
    wheels = tmp_path / "big"
    build_wheel(wheels, "bigpkg", "1.0", modules={"bigpkg/__init__.py": "",
                                                   "bigpkg/blob.py": "#" + os.urandom(
                                                       2_500_000).hex()})
    (app / "small.txt").write_text(f"--no-index\n--find-links {packages}\ngreeting\n")
    (app / "big.txt").write_text(f"--no-index\n--find-links {wheels}\nbigpkg\n")
    small = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_REQUIREMENTS_TXT="small.txt")
    big = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_REQUIREMENTS_TXT="big.txt")
    assert run_entrypoint(image, small, "prepare", "--", "python", "-c", PROBE).returncode == 0
    [existing] = complete_envs(cache)

    result = run_entrypoint(image, big, "run", "--", "true")
    assert result.returncode == 95, result.stderr
    assert "no space left" in result.stderr and "Traceback" not in result.stderr
    assert complete_envs(cache) == [existing]
    assert len(list(cache.glob("envs/*"))) == 1  # the failed build left nothing
    again = run_entrypoint(image, small, "run", "--", "python", "-c", PROBE)
    assert again.returncode == 0 and ": hit" in again.stderr


# --- clean-up ---------------------------------------------------------------------------

def test_ls_and_gc_remove_least_recently_used_never_in_use(
    image: ImageVenv, tmp_path: Path, cache: Path, index: Index,
) -> None:
    keys: dict[str, str] = {}
    envs: dict[str, dict[str, str]] = {}
    for name in ("tinydep", "greeting", "hello-cli"):
        app = tmp_path / name
        app.mkdir()
        envs[name] = env_for(tmp_path, image, app, cache, index.url, name)
        assert run_entrypoint(image, envs[name], "prepare", "--", "sleep", "60").returncode == 0
        keys[name] = json.loads(run_entrypoint(image, envs[name], "plan", "--json", "--",
                                               "sleep", "60").stdout)["key"]
    user = start(image, envs["tinydep"], "sleep", "60")  # in use, and will look old
    wait_for(lambda: Path(f"/proc/{user.pid}/cmdline").read_bytes().startswith(b"sleep"), 60,
             "the start to exec into its environment")
    day = 86400.0
    now = time.time()
    for name, age in (("tinydep", 10 * day), ("greeting", 5 * day), ("hello-cli", 0.0)):
        stamp = cache / "envs" / keys[name] / ".extensibility" / "last-access"
        os.utime(stamp, (now - age, now - age))
    try:
        listed = {row["key"]: row for row in json.loads(
            run_entrypoint(image, envs["tinydep"], "ls", "--json").stdout)}
        assert listed[keys["tinydep"]]["status"] == "in use"
        assert listed[keys["greeting"]]["status"] == "complete"
        assert listed[keys["greeting"]]["origin"].endswith("greeting/requirements.txt")
        assert listed[keys["greeting"]]["size"] > 0

        by_age = run_entrypoint(image, envs["tinydep"], "gc", "--max-age", "3d")
        assert by_age.returncode == 0, by_age.stderr
        assert f"kept {keys['tinydep']}: in use" in by_age.stderr
        assert sorted(p.name for p in (cache / "envs").iterdir()) == sorted(
            [keys["tinydep"], keys["hello-cli"]])
    finally:
        user.kill()
        user.wait()
    # no longer in use: a size budget that fits one environment removes the older one
    budget = str(int(listed[keys["hello-cli"]]["size"]) + 1024)
    by_size = run_entrypoint(image, envs["tinydep"], "gc", "--max-size", budget,
                             "--min-idle", "0")
    assert by_size.returncode == 0, by_size.stderr
    assert [p.name for p in (cache / "envs").iterdir()] == [keys["hello-cli"]]
    assert {r["key"] for r in events(cache, "removed")} == {keys["tinydep"], keys["greeting"]}
