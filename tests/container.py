"""Containers without Docker: entrypoint/Dockerfile.example built and run with bubblewrap.

The image is a folder (`rootfs`) holding what the image adds to a Debian root: `/opt`, `/var`,
`/etc`, `/home`, `/root`, `/usr/local`. The host's `/usr` stands in for the base image's
system. "FROM" (the prebuilt inference image) is simulated by `base_image`: its Python (a
venv of Debian's /usr/bin/python3.11, readable by a non-root user) with the scoring server,
its user `dockeruser` (uid 1000), and its runit services: nginx on 5001 proxying to
127.0.0.1:31311, and the server's service, whose scripts the Dockerfile replaces. Every
other step is read from the Dockerfile itself (`instructions`, `ImageBuild.apply`).

A build step (RUN) runs in a sandbox with the image's folders writable, as the Dockerfile's
current USER: root is the real root (as `docker build`), dockeruser runs as in a container.
A container (`Container`) is a sandbox of its own: a PID namespace whose first process is the
image's ENTRYPOINT, uid 1000, a read-only root, a private /tmp (a host folder the test can
list), the volumes it is given, the host's network. Its user namespace maps uids one to one
(`UserNamespace`), as Docker does without user remapping: files the image's root made are
owned by uid 0 inside, as in a real image (a namespace mapping only uid 1000 would show them
as `nobody`, and the cache's ownership checks would see another user).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import IMAGE_WHEELHOUSE, REPO, build_project_wheel, wait_for

DOCKERFILE = REPO / "entrypoint" / "Dockerfile.example"
SYSTEM_PYTHON = "/usr/bin/python3.11"
# where the simulated base image keeps its Python (the prebuilt images' conda environment)
IMAGE_PYTHON_HOME = "/opt/miniconda/envs/amlenv"
USERS = {"root": 0, "dockeruser": 1000}
USER_HOMES = {"root": "/root", "dockeruser": "/home/dockeruser"}
# the folders of a root that belong to the image; the host's /usr is the base system
IMAGE_FOLDERS = ("etc", "home", "opt", "root", "tmp", "var", "usr/local")
# what the base image's Python holds besides pip (the extras of this project included, so
# that the Dockerfile's `pip install WHEEL[uv,remote]` finds every dependency installed)
BASE_PACKAGES = ("azureml-inference-server-http", "uv", "packaging", "filelock", "pyyaml",
                 "setuptools", "wheel", "azure-storage-blob", "zstandard")
NGINX_PORT, SERVER_PORT = 5001, 31311  # the prebuilt images' ports
REQUIRED_PROGRAMS = {"bwrap": "bubblewrap", "runsvdir": "runit", "sv": "runit",
                     "nginx": "nginx", "setpriv": "util-linux", "unshare": "util-linux"}

# --- the simulated base image's own files (stand-ins for the prebuilt images' ones) ------

NGINX_CONF = f"""\
# as the prebuilt images' nginx: 5001 in front of the server on 127.0.0.1:{SERVER_PORT};
# its runtime files in /tmp, since the root is read-only
worker_processes 1;
daemon off;
pid /tmp/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path /tmp/nginx-body;
    proxy_temp_path /tmp/nginx-proxy;
    fastcgi_temp_path /tmp/nginx-fastcgi;
    uwsgi_temp_path /tmp/nginx-uwsgi;
    scgi_temp_path /tmp/nginx-scgi;
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        location / {{
            proxy_pass http://127.0.0.1:{SERVER_PORT};
            proxy_read_timeout 300s;
        }}
    }}
}}
"""
NGINX_RUN = "#!/bin/sh\nexec 2>&1\nexec nginx -e stderr -c /etc/nginx/nginx.conf\n"
# the base image's own server service: the Dockerfile must replace it
OLD_SERVER_RUN = ("#!/bin/sh\necho 'the base image's own run script ran: the Dockerfile did not "
                  "replace it'\nexit 1\n")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "dockeruser:x:1000:1000:dockeruser:/home/dockeruser:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
GROUP = "root:x:0:\ndockeruser:x:1000:\nnogroup:x:65534:\n"


def missing_programs() -> list[str]:
    return sorted({package for program, package in REQUIRED_PROGRAMS.items()
                   if shutil.which(program) is None})


class UserNamespace:
    """A user namespace mapping uids and gids 0-65535 one to one, held open by a sleeping
    process; every sandbox joins it (`bwrap --userns`) and gets its own PID namespace."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(["unshare", "--user", "sleep", "infinity"],
                                       stderr=subprocess.PIPE)
        ours = os.readlink("/proc/self/ns/user")
        path = f"/proc/{self.holder.pid}/ns/user"

        def unshared() -> bool:
            if self.holder.poll() is not None:
                assert self.holder.stderr is not None
                raise OSError(self.holder.stderr.read().decode(errors="replace").strip())
            return os.readlink(path) != ours

        wait_for(unshared, 60, "unshare --user")
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{self.holder.pid}/{name}").write_text("0 0 65536\n")
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self.fd)
        self.holder.kill()
        self.holder.wait()


def unsupported_reason() -> str | None:
    """Why containers cannot run here, or None: not root (the image is built as root, as
    `docker build` does, and the container runs as another uid), or a kernel that refuses
    user namespaces (a bwrap smoke test)."""
    if os.geteuid() != 0:
        return "the container tests build the image as root (as docker build): run them as root"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"the container tests need {SYSTEM_PYTHON} (Debian's python3.11)"
    try:
        namespace = UserNamespace()
    except OSError as error:
        return f"the kernel refuses user namespaces (unshare --user: {error})"
    try:
        smoke = subprocess.run(
            ["bwrap", "--userns", str(namespace.fd), "--unshare-pid", "--ro-bind", "/usr",
             "/usr", *system_links(), "--proc", "/proc", "--dev", "/dev", "--",
             "setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", "/bin/true"],
            pass_fds=(namespace.fd,), capture_output=True, text=True, timeout=60, check=False)
    finally:
        namespace.close()
    if smoke.returncode != 0:
        return (f"the kernel refuses a sandbox in a user namespace (bwrap: "
                f"{smoke.stderr.strip()}); containers cannot be simulated here")
    return None


def system_links() -> list[str]:
    """/bin, /lib... as the host has them (links into /usr on a merged-/usr Debian)."""
    args: list[str] = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    return args


# --- the Dockerfile -------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continued lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        result.append((keyword.upper(), arguments.strip()))
    return result


def with_prepare_block(text: str) -> str:
    """The Dockerfile with its commented-out `extensibility prepare` block enabled, in place."""
    [paragraph] = [p for p in text.split("\n\n") if "# RUN extensibility prepare" in p]
    enabled = "\n".join(line[2:] if line.startswith(("# COPY ", "# ENV ", "# RUN ")) else line
                         for line in paragraph.splitlines())
    return text.replace(paragraph, enabled)


def json_or_shell(arguments: str) -> list[str]:
    """ENTRYPOINT/CMD: the exec form (JSON), else the shell form."""
    if arguments.startswith("["):
        return [str(x) for x in json.loads(arguments)]
    return ["/bin/sh", "-c", arguments]


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = True


@dataclass
class Image:
    rootfs: Path
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    entrypoint: list[str] = field(default_factory=list)

    def listing(self) -> list[str]:
        """Every path of the image with its size and mtime: what a write would change."""
        rows = []
        for path in sorted(self.rootfs.rglob("*")):
            stat = path.lstat()
            rows.append(f"{path.relative_to(self.rootfs)} {stat.st_size} {stat.st_mtime_ns}")
        return rows


def sandbox_argv(image: Image, *, userns: int, user: str, writable_image: bool, tmp: Path,
                 mounts: Sequence[Mount], env: Mapping[str, str], command: Sequence[str],
                 info_fd: int | None = None, shm: bool = True) -> list[str]:
    """bwrap's arguments for one sandbox of `image` as `user` (see the module's docstring):
    the command is the PID namespace's first process, as `user` without capabilities.
    `shm`: a writable /dev/shm, as Docker and Kubernetes give (else bwrap's bare /dev)."""
    argv = ["bwrap", "--die-with-parent", "--userns", str(userns), "--unshare-pid",
            "--as-pid-1", "--ro-bind", "/usr", "/usr", *system_links()]
    bind = "--bind" if writable_image else "--ro-bind"
    for folder in IMAGE_FOLDERS:
        if folder != "tmp":
            argv += [bind, str(image.rootfs / folder), f"/{folder}"]
    argv += ["--ro-bind", "/etc/alternatives", "/etc/alternatives",  # awk, ...: Debian's links
             "--bind", str(tmp), "/tmp", "--proc", "/proc", "--dev", "/dev"]
    if shm:
        argv += ["--perms", "1777", "--tmpfs", "/dev/shm"]
    for mount in mounts:
        argv += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
    if not writable_image:
        argv += ["--remount-ro", "/"]
    argv += ["--clearenv", "--chdir", "/"]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    if USERS[user] != 0:  # setpriv execs the command: it stays the first process
        uid = str(USERS[user])
        argv += ["--", "setpriv", "--reuid", uid, "--regid", uid, "--clear-groups"]
    return [*argv, "--", *command]


# --- building ---------------------------------------------------------------------------

class ImageBuild:
    """`docker build` of the Dockerfile's instructions onto a simulated base image."""

    def __init__(self, image: Image, context: Path, log: Path, userns: UserNamespace) -> None:
        self.image, self.userns = image, userns
        self.context = context  # searched first for COPY sources, then the repository
        self.log = log

    def base_image(self) -> None:
        """FROM: the prebuilt inference image, simulated (see the module's docstring)."""
        root = self.image.rootfs
        for folder in IMAGE_FOLDERS:
            (root / folder).mkdir(parents=True, exist_ok=True)
        for folder in ("etc/alternatives", "etc/nginx", "home/dockeruser", "var/runit/nginx",
                       "var/runit/gunicorn", "var/azureml-app", "usr/local/bin"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "etc" / "passwd").write_text(PASSWD)
        (root / "etc" / "group").write_text(GROUP)
        for name in ("hosts", "nsswitch.conf", "ld.so.cache"):
            if Path("/etc", name).exists():
                shutil.copy(Path("/etc", name), root / "etc" / name)
        shutil.copy("/etc/nginx/mime.types", root / "etc" / "nginx" / "mime.types")
        (root / "etc" / "nginx" / "nginx.conf").write_text(NGINX_CONF)
        for path, text in ((root / "var/runit/nginx/run", NGINX_RUN),
                           (root / "var/runit/gunicorn/run", OLD_SERVER_RUN)):
            path.write_text(text)
            path.chmod(0o755)
        os.chown(root / "home" / "dockeruser", 1000, 1000)
        (root / "root").chmod(0o700)
        self.image.env = {
            "PATH": f"{IMAGE_PYTHON_HOME}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                    "/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "AML_APP_ROOT": "/var/azureml-app",
        }
        self.image.user = "dockeruser"
        pip = next(IMAGE_WHEELHOUSE.glob("pip-*.whl"))
        self.run("root", f"{SYSTEM_PYTHON} -m venv --without-pip {IMAGE_PYTHON_HOME} && "
                 f"{IMAGE_PYTHON_HOME}/bin/python /wheels/{pip.name}/pip install -q "
                 f"--no-index --find-links /wheels pip {' '.join(BASE_PACKAGES)}",
                 mounts=[Mount(IMAGE_WHEELHOUSE, "/wheels", writable=False)])

    def apply(self, steps: Sequence[tuple[str, str]]) -> None:
        for keyword, arguments in steps:
            if keyword == "FROM":
                self.base_image()
            elif keyword == "USER":
                self.image.user = arguments
            elif keyword == "ENV":
                name, _, value = arguments.partition("=")
                self.image.env[name] = value
            elif keyword == "COPY":
                *sources, target = shlex.split(arguments)
                self.copy(sources, target)
            elif keyword == "RUN":
                self.run(self.image.user, arguments)
            elif keyword == "ENTRYPOINT":
                self.image.entrypoint = json_or_shell(arguments)
            else:
                raise AssertionError(f"Dockerfile: {keyword} is not simulated; add it here")

    def copy(self, sources: Sequence[str], target: str) -> None:
        destination = self.image.rootfs / target.lstrip("/")
        for source in sources:
            path = self.context / source
            if not path.exists():
                path = REPO / source
            into = destination / path.name if target.endswith("/") else destination
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, into)  # keeps the mode, as COPY does

    def run(self, user: str, command: str, mounts: Sequence[Mount] = ()) -> None:
        """RUN: `sh -c COMMAND` as `user`, the image's folders writable, umask 022."""
        env = {**self.image.env, "HOME": USER_HOMES[user]}
        argv = sandbox_argv(self.image, userns=self.userns.fd, user=user, writable_image=True,
                            tmp=self.image.rootfs / "tmp", mounts=mounts, env=env,
                            command=["/bin/sh", "-c", command])
        with self.log.open("a") as out:
            out.write(f"--- RUN ({user}) {command}\n")
            out.flush()
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, umask=0o022,
                                  pass_fds=(self.userns.fd,), timeout=900, check=False)
        if done.returncode != 0:
            raise AssertionError(f"RUN {command} failed ({done.returncode}): see {self.log}")


def build_image(folder: Path, userns: UserNamespace, *, extras: str = "uv,remote",
                prepare: bool = False) -> Image:
    """Dockerfile.example built into `folder`, with the install's extras as its comment
    says for a remote cache (`[uv,remote]`); `prepare`: with its optional prepare block
    enabled (put the requirements file in `folder/context` first)."""
    context = folder / "context"
    build_project_wheel(REPO, context / "dist", folder)
    text = DOCKERFILE.read_text()
    assert ".whl[uv]" in text
    text = text.replace(".whl[uv]", f".whl[{extras}]")
    if prepare:
        text = with_prepare_block(text)
    build = ImageBuild(Image(folder / "rootfs"), context, folder / "build.log", userns)
    build.apply(instructions(text))
    return build.image


# --- running ----------------------------------------------------------------------------

def ports_free() -> None:
    """The images' ports are fixed; on a shared loopback, say so when another process has one."""
    for port in (NGINX_PORT, SERVER_PORT):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as error:
                raise AssertionError(f"port {port} on 127.0.0.1 is in use ({error}); the "
                                     "container needs it, as the prebuilt images do") from None


class Container:
    """One run of `image` (its ENTRYPOINT unless `command` is given), as its USER."""

    def __init__(self, image: Image, folder: Path, userns: UserNamespace, *,
                 env: Mapping[str, str] | None = None, mounts: Sequence[Mount] = (),
                 command: Sequence[str] | None = None, shm: bool = True) -> None:
        folder.mkdir(parents=True)
        self.shm = shm
        self.image, self.folder, self.mounts, self.userns = image, folder, list(mounts), userns
        self.tmp = folder / "tmp"  # the container's private /tmp, listed by the tests
        self.tmp.mkdir()
        os.chown(self.tmp, USERS[image.user], USERS[image.user])
        self.log_path = folder / "container.log"
        self.command = list(command) if command is not None else image.entrypoint
        self.env = {**image.env, "HOME": USER_HOMES[image.user], **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0  # the sandbox's first process, as the host sees it

    def start(self) -> Container:
        for mount in self.mounts:  # the runtime creates mount points, as Docker does
            target = self.image.rootfs / mount.target.lstrip("/")
            if mount.target.count("/") > 1 and not target.exists():
                target.mkdir(parents=True)
        read, write = os.pipe()
        argv = sandbox_argv(self.image, userns=self.userns.fd, user=self.image.user,
                            writable_image=False, tmp=self.tmp, mounts=self.mounts,
                            env=self.env, command=self.command, info_fd=write,
                            shm=self.shm)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            pass_fds=(write, self.userns.fd))
        os.close(write)
        with os.fdopen(read) as info:
            text = info.read()
        if not text:
            raise AssertionError(f"the sandbox did not start: {self.log()}")
        self.pid = int(json.loads(text)["child-pid"])
        return self

    def run(self, timeout: float = 600) -> int:
        """Start, and wait for the end (an init container, a one-off command)."""
        self.start()
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, number: signal.Signals) -> None:
        """To the sandbox's first process, as the platform signals a container's."""
        os.kill(self.pid, number)

    def sv(self, *args: str, service: str = "gunicorn") -> subprocess.CompletedProcess[str]:
        """`sv ARGS /var/runit/SERVICE`, as `docker exec` would: the same supervise folder
        (in the container's /tmp), reached from the host."""
        control = self.folder / "sv" / service
        if not control.exists():
            control.mkdir(parents=True)
            (control / "supervise").symlink_to(self.tmp / f"supervise.{service}")
        return subprocess.run(["sv", *args, str(control)], capture_output=True, text=True,
                              timeout=120, check=False)

    def wait_for_log(self, text: str, timeout: float = 300, count: int = 1) -> None:
        def logged() -> bool:
            if self.log().count(text) >= count:
                return True
            if not self.running():
                raise AssertionError(f"the container exited before logging {text!r}:\n"
                                     f"{self.log()}")
            return False

        wait_for(logged, timeout, f"{text!r} in {self.log_path}")

    def tmp_listing(self) -> list[str]:
        return sorted(str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*"))

    def kill(self) -> None:
        if self.running():
            os.kill(self.pid, signal.SIGKILL)  # the first process: the whole PID namespace
            assert self.process is not None
            self.process.wait(timeout=60)

