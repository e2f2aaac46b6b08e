"""The image as the platform runs it (tests/container.py: Dockerfile.example built and run in
bubblewrap sandboxes): runsvdir supervising nginx on 5001 and the server's runit service, the
image's non-root user, a read-only root, the Kubernetes pair of entrypoint/k8s/.

Run by `./dev test-container` (marker `container`), not by `./dev test`. The containers use
the images' fixed ports (5001, 31311) on the shared loopback: one runs at a time, so the
tests of this module run in file order, the first four on one container."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from extensibility.compile import is_compiled
from tests.azurite import Azurite
from tests.azurite import Container as BlobContainer
from tests.conftest import SCORE_PY
from tests.container import (
    Container,
    Image,
    Mount,
    UserNamespace,
    build_image,
    missing_programs,
    ports_free,
    unsupported_reason,
)
from tests.support import Index, complete_envs, start_index, wait_for
from tests.test_k8s import pod_of, variables

pytestmark = [pytest.mark.container, pytest.mark.slow]
URL = "http://127.0.0.1:5001"
CACHE = "/var/cache/azureml-extensibility"  # the Dockerfile's ENV EXTENSIBILITY_CACHE_DIR
APP = "/var/azureml-app"
GRACE_PERIOD = 30  # Kubernetes' default terminationGracePeriodSeconds
CONTAINER_UID = 1000


# --- the image, built once --------------------------------------------------------------

@pytest.fixture(scope="module")
def userns() -> Iterator[UserNamespace]:
    missing = missing_programs()
    if missing:
        pytest.fail(f"the container tests need {', '.join(missing)}: apt-get install "
                    f"{' '.join(missing)} (.ci/run does)")
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(reason)
    namespace = UserNamespace()
    yield namespace
    namespace.close()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # pytest's temp folders are private to root; the container's user reads the image here
    folder = Path(tempfile.mkdtemp(prefix="extensibility-container-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def built(workdir: Path, userns: UserNamespace) -> Image:
    return build_image(workdir / "image", userns)


@pytest.fixture(scope="module")
def running() -> Iterator[list[Container]]:
    """Every container of the module, killed at the end; `exclusive` stops the live ones."""
    started: list[Container] = []
    yield started
    for container in started:
        container.kill()


def exclusive(running: list[Container], container: Container) -> Container:
    """Start `container` once no other holds the images' ports."""
    for other in running:
        other.kill()
    ports_free()
    running.append(container)
    return container.start()


def app_folder(folder: Path, requirements: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "score.py").write_text(SCORE_PY)
    (folder / "requirements.txt").write_text(requirements)
    return folder


def volume(folder: Path, mode: int = 0o700, uid: int = CONTAINER_UID,
           gid: int = CONTAINER_UID) -> Path:
    """A volume as the platform mounts it: owned by the container's user (or its fsGroup)."""
    folder.mkdir(parents=True)
    os.chown(folder, uid, gid)
    folder.chmod(mode)
    return folder


def healthy(container: Container, url: str = URL) -> bool:
    if not container.running():
        raise AssertionError(f"the container exited:\n{container.log()}")
    try:
        return requests.get(f"{url}/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def owners(folder: Path) -> set[int]:
    return {p.lstat().st_uid for p in folder.rglob("*")}


def listing(folder: Path) -> list[str]:
    return sorted(f"{p.relative_to(folder)} {p.lstat().st_mtime_ns}" for p in folder.rglob("*"))


def blob_container(azurite: Azurite) -> BlobContainer:
    return BlobContainer(azurite, f"t{uuid.uuid4().hex[:20]}")


# --- 1, 2, 7, 4: one container, cold started through runsvdir --------------------------

@dataclass
class Serving:
    container: Container
    cache: Path
    app: Path
    remote: BlobContainer
    image_before: list[str]
    app_before: list[str]


@pytest.fixture(scope="module")
def serving(built: Image, workdir: Path, userns: UserNamespace, index: Index,
            azurite: Azurite, running: list[Container]) -> Serving:
    folder = workdir / "serving"
    app = app_folder(folder / "app", f"--index-url {index.url}\ngreeting==1.0\n")
    cache = volume(folder / "cache")
    remote = blob_container(azurite)
    url, _ = remote.sas_url()
    container = Container(built, folder / "container", userns, env={
        "AZUREML_ENTRY_SCRIPT": "score.py", "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt",
        "EXTENSIBILITY_REMOTE_CACHE": url,
    }, mounts=[Mount(cache, CACHE), Mount(app, APP)])
    image_before, app_before = built.listing(), listing(app)
    exclusive(running, container)
    wait_for(lambda: healthy(container), 300, "GET / through nginx on 5001")
    return Serving(container, cache, app, remote, image_before, app_before)


def test_cold_start_answers_through_nginx_and_builds_in_the_volume_as_the_images_user(
    serving: Serving,
) -> None:
    health = requests.get(f"{URL}/", timeout=30)
    assert health.status_code == 200 and health.headers["Server"].startswith("nginx")
    scored = requests.post(f"{URL}/score", json={}, timeout=30)
    assert scored.status_code == 200, scored.text
    assert scored.json() == {"greeting": "HELLO WORLD"}
    log = serving.container.log()
    assert "(request unchanged" not in log  # a cold start: built, not found
    assert len(complete_envs(serving.cache)) == 1
    assert owners(serving.cache) == {CONTAINER_UID}  # everything made by the image's user


def test_sv_restart_restarts_the_server_warm_under_the_supervisor(serving: Serving) -> None:
    container = serving.container
    before = container.sv("status")
    assert before.stdout.startswith("run: "), before.stdout + before.stderr
    restarted = container.sv("-w", "120", "restart")  # sv's own wait: 7 s by default
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    container.wait_for_log("(request unchanged")  # the restart's start: a cache hit
    wait_for(lambda: healthy(container), 300, "GET / after sv restart")
    assert requests.post(f"{URL}/score", json={}, timeout=30).json() == {
        "greeting": "HELLO WORLD"}
    after = container.sv("status")
    assert after.stdout.startswith("run: ") and after.stdout.split(")")[0] != before.stdout.split(
        ")")[0], (before.stdout, after.stdout)  # another pid
    assert "server stopped, exit code" in container.log()  # ./finish ran for the old one


@dataclass
class Stopped:
    code: int
    log: str
    tmp: list[str]


@pytest.fixture(scope="module")
def stopped(serving: Serving) -> Stopped:
    """SIGTERM to the container's first process, once the background work of the cold start
    (the byte-compile, the publish to the remote cache) is done."""
    container = serving.container
    [environment] = complete_envs(serving.cache)

    def background_done() -> bool:
        assert container.running(), container.log()
        published = any(name.endswith("/manifest.json") for name in serving.remote.blobs())
        return published and is_compiled(environment)

    wait_for(background_done, 300, "the compile and the publish of the cold start")
    container.signal(signal.SIGTERM)
    code = container.wait(GRACE_PERIOD)  # past it, the platform would SIGKILL
    return Stopped(code, container.log(), container.tmp_listing())


def test_sigterm_to_the_first_process_stops_nginx_and_the_server_cleanly(
    stopped: Stopped,
) -> None:
    assert stopped.code == 0, stopped.log
    assert "ok: down: /var/runit/gunicorn" in stopped.log
    assert "ok: down: /var/runit/nginx" in stopped.log
    assert "kill: " not in stopped.log  # sv did not need its SIGKILL
    assert "signal 15 (SIGTERM) received" in stopped.log  # nginx's own shutdown
    assert "server stopped, exit code 0: the server exited" in stopped.log.split(
        "(request unchanged")[-1]  # ./finish for the server's own exit on SIGTERM
    assert "runsvdir-start: the services are down" in stopped.log


def test_nothing_outside_the_cache_volume_is_written(serving: Serving, stopped: Stopped,
                                                     built: Image) -> None:
    """The root is read-only, so a write elsewhere would have failed the start; this lists
    what was written where it could be: /tmp (runit's and nginx's runtime files only), the
    app folder (unchanged), the image (unchanged). The installers, the compile and the
    publisher all ran (the environment is compiled and published)."""
    allowed = ("supervise.gunicorn", "supervise.nginx", "nginx-", "nginx.pid")
    assert [p for p in stopped.tmp if not p.startswith(allowed)] == [], stopped.tmp
    assert listing(serving.app) == serving.app_before
    assert built.listing() == serving.image_before
    ours = [line for line in stopped.log.splitlines() if line.startswith("extensibility")]
    assert not [line for line in ours if "Read-only" in line or "ermission denied" in line]
    assert "Traceback" not in stopped.log
    # the server's own: gunicorn 27 tries a control socket in $HOME, logs this and goes on
    assert "Control server error: [Errno 30] Read-only file system" in stopped.log


# --- 3: a request that cannot be served ----------------------------------------------

def test_a_failed_start_waits_then_stops_the_container_with_the_error_in_its_log(
    built: Image, workdir: Path, userns: UserNamespace, index: Index,
    running: list[Container],
) -> None:
    folder = workdir / "conflict"
    # needs certifi<2021; the scoring server needs certifi>=2024.7.4: exit 95 before installing
    app = app_folder(folder / "app", f"--index-url {index.url}\nneeds-old-certifi==1.0\n")
    container = Container(built, folder / "container", userns, env={
        "AZUREML_ENTRY_SCRIPT": "score.py", "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt",
        "EXTENSIBILITY_FAILURE_DELAY": "1",
    }, mounts=[Mount(volume(folder / "cache"), CACHE), Mount(app, APP)])
    exclusive(running, container)
    code = container.wait(300)
    log = container.log()
    assert code == 111, log  # runsvdir's exit code after ./finish's SIGHUP
    assert "conflicts with the scoring server" in log and "(exit 95)" in log
    assert "exit code 95: installation of the extra packages failed" in log
    assert "waiting 1 s so the logs are sent" in log
    assert "stopping the container (SIGHUP to runsvdir)" in log
    assert "runsvdir-start: the services are down" in log
    assert log.count("exit code 95") == 1  # not retried in a loop


# --- 5: prepared as root at build time, served warm from the read-only cache -----------

def test_an_image_prepared_as_root_is_served_warm_by_its_user_from_the_read_only_cache(
    workdir: Path, userns: UserNamespace, packages: Path, running: list[Container],
) -> None:
    folder = workdir / "prepared"
    index = start_index(packages, workdir / "prepared-index.log")
    try:
        app_folder(folder / "image" / "context", f"--index-url {index.url}\ngreeting==1.0\n")
        # the Dockerfile with its optional block enabled: `extensibility prepare` as root
        image = build_image(folder / "image", userns, prepare=True)
    finally:
        index.stop()  # the container has nothing to install from
    cache = image.rootfs / CACHE.lstrip("/")
    [environment] = complete_envs(cache)
    assert owners(environment) == {0} and is_compiled(environment)  # root's, compiled
    app = app_folder(folder / "app", "")
    container = Container(image, folder / "container", userns,
                          env={"AZUREML_ENTRY_SCRIPT": "score.py"}, mounts=[Mount(app, APP)])
    before = image.listing()
    exclusive(running, container)
    wait_for(lambda: healthy(container), 300, "GET / from the prepared image")
    assert requests.post(f"{URL}/score", json={}, timeout=30).json() == {
        "greeting": "HELLO WORLD"}
    log = container.log()
    assert "(request unchanged" in log and "Traceback" not in log
    container.signal(signal.SIGTERM)
    assert container.wait(GRACE_PERIOD) == 0, container.log()
    assert image.listing() == before  # the cache in the read-only root: nothing written


# --- the byte-compile in a container without a writable /dev/shm --------------------------

def test_the_background_compile_needs_no_writable_dev_shm(
    built: Image, workdir: Path, userns: UserNamespace, index: Index, running: list[Container],
) -> None:
    """compileall's process pool needs POSIX semaphores (/dev/shm); without them the compile
    runs in one process. Before, it died at once, and the publisher's wait for the compile
    retried it for ever."""
    folder = workdir / "no-shm"
    app = app_folder(folder / "app", f"--index-url {index.url}\ngreeting==1.0\n")
    check = ("import sys; from pathlib import Path; "
             "from extensibility.compile import compile_now, is_compiled; "
             "from extensibility.store import Store; "
             "compile_now(Store(Path(sys.argv[1])), Path(sys.prefix)); "
             "print('compiled:', is_compiled(Path(sys.prefix)))")
    container = Container(built, folder / "container", userns, env={
        "AZUREML_ENTRY_SCRIPT": "score.py", "AZUREML_EXTRA_REQUIREMENTS_TXT": "requirements.txt",
    }, mounts=[Mount(volume(folder / "cache"), CACHE), Mount(app, APP)], shm=False,
        command=["extensibility", "run", "--", "python", "-c", check, CACHE])
    running.append(container)  # killed at the end if it hangs
    assert container.run(timeout=120) == 0, container.log()
    assert "compiled: True" in container.log()


# --- 6: the Kubernetes pod of entrypoint/k8s/deployment.yml, on two nodes -------------

def test_the_kubernetes_init_container_then_the_server_container_on_two_nodes(
    built: Image, workdir: Path, userns: UserNamespace, own_index: Index, azurite: Azurite,
    running: list[Container],
) -> None:
    pod = pod_of("deployment.yml")
    [init], [server] = pod["initContainers"], pod["containers"]
    remote = blob_container(azurite)
    url, _ = remote.sas_url()
    env = variables(server, url)  # exactly the manifest's values: the paths are the pod's
    app = app_folder(workdir / "k8s-app", f"--index-url {own_index.url}\ngreeting==1.0\n")
    [cache_mount] = [m["mountPath"] for m in server["volumeMounts"] if m["name"] == "cache"]
    [app_mount] = [m for m in server["volumeMounts"] if m["name"] == "app"]
    assert app_mount["mountPath"] == APP
    uid, fs_group = pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]
    assert uid == CONTAINER_UID

    def pod_on(node: str) -> tuple[str, str]:
        # the emptyDir with fsGroup: group-owned, group-writable, setgid
        cache = volume(workdir / node / "cache", mode=0o2775, uid=0, gid=fs_group)
        mounts = [Mount(cache, cache_mount), Mount(app, APP, writable=not app_mount["readOnly"])]
        first = Container(built, workdir / node / "init", userns, env=env, mounts=mounts,
                          command=init["command"])
        code = first.run()
        assert code == 0, first.log()
        serving = Container(built, workdir / node / "server", userns, env=env, mounts=mounts,
                            command=server["command"])
        exclusive(running, serving)
        port = server["ports"][0]["containerPort"]
        wait_for(lambda: healthy(serving, f"http://127.0.0.1:{port}"), 300,
                 f"{node}'s server container")
        scored = requests.post(f"http://127.0.0.1:{port}/score", json={}, timeout=30)
        assert scored.json() == {"greeting": "HELLO WORLD"}
        served = serving.log()
        serving.signal(signal.SIGTERM)
        serving.wait(GRACE_PERIOD)
        return first.log(), served

    init_log, served = pod_on("node-1")
    assert "not in the remote cache" in init_log and "published" in init_log
    assert "request unchanged" in served  # warm: the init container's work
    own_index.stop()  # the second node restores: nothing to install from
    init_log, served = pod_on("node-2")
    assert "restored" in init_log and "prepare" not in init_log.split("restored")[0]
    assert "request unchanged" in served
