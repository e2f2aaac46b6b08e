"""The cache of environments: folders, per-key locks, completion markers, last access.

Layout (docs/cache.md):

    CACHE/envs/KEY/                  the overlay venv
    CACHE/envs/KEY/.extensibility/   key.json, origin.json, build.log, last-access, complete
    CACHE/locks/KEY.lock             per-key build lock (outside the env, survives its removal)
    CACHE/locks/KEY.owner            who holds the lock, for the messages of those who wait
    CACHE/locks/KEY.use              shared lock held by every process running in the env
    CACHE/journal.jsonl              one line per build started and ended (append-only)

An environment is valid only when `complete` exists; it is written last, atomically.
A start holds a shared `flock` on `KEY.use` from before its final lookup through `exec`
(the descriptor is inherited), so the clean-up can tell which environments are in use.
Who may change the cache is safety.py's rule; the store applies it on every lookup.
A cache this user cannot write (read-only, or prepared by root) still serves: the in-use
lock is then taken on a read-only descriptor, or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from extensibility import safety
from extensibility.errors import LockTimeout
from extensibility.log import Log

TYPE_CHECKING = False  # typing costs the warm path an import; mypy knows this name
if TYPE_CHECKING:
    from typing import Any

# the cache's layout: every folder, lock and marker is named here (docs/cache.md)
META = ".extensibility"  # inside an environment: what the store knows of it
MARKER = "complete"  # written last: the environment is valid
COMPILED = "compiled"  # its modules are byte-compiled (compile.py)
KEY_DOCUMENT = "key.json"  # what the key was computed from
ORIGIN = "origin.json"  # how it was built (or restored)
LAST_ACCESS = "last-access"
LOCK_POLL_SECONDS = 10.0


class Entry:
    """One folder under envs/, as `ls` and the clean-up see it."""

    def __init__(self, key: str, path: Path, complete: bool, last_access: float | None,
                 document: dict[str, Any] | None, origin: dict[str, Any] | None) -> None:
        self.key = key
        self.path = path
        self.complete = complete
        self.last_access = last_access
        self.document = document  # key.json: what the key was computed from
        self.origin = origin  # origin.json: what the build did

    def size(self) -> int:
        return folder_size(self.path)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.envs = root / "envs"
        self.locks = root / "locks"
        self.warm = root / "warm"  # warm.py's notes
        self.libpath = root / "libpath"  # libpath.py's verdicts on lib-path folders
        self.downloads = root / "downloads"  # the installers' own caches (private)

    def build_lock_path(self, key: str) -> Path:
        return self.locks / f"{key}.lock"

    def use_lock_path(self, key: str) -> Path:
        return self.locks / f"{key}.use"

    def compile_lock_path(self, key: str) -> Path:
        return self.locks / f"{key}.compile"

    def warm_note_path(self, digest: str) -> Path:
        return self.warm / f"{digest}.json"

    def libpath_note_path(self, digest: str) -> Path:
        return self.libpath / f"{digest}.json"

    def origin(self, key: str) -> dict[str, Any] | None:
        return read_json(self.meta_dir(key) / ORIGIN)

    def key_document(self, key: str) -> dict[str, Any] | None:
        return read_json(self.meta_dir(key) / KEY_DOCUMENT)

    def env_dir(self, key: str) -> Path:
        return self.envs / key

    def meta_dir(self, key: str) -> Path:
        return self.env_dir(key) / META

    def lookup(self, key: str) -> Path | None:
        """The environment for `key` if it is complete, sound and safe to run.

        The warm path: a few stat calls, no lock (a complete environment is never changed)."""
        root = self.env_dir(key)
        if not (root / META / MARKER).is_file() or self.damage(key) is not None:
            return None
        self.check_safe(root)
        return root

    def check_safe(self, environment: Path | None = None) -> None:
        """Refuse (exit 92) a cache another user could change: the server would run what
        they put there (safety.py). With `environment`: also the folders it runs from."""
        folders = [self.root, self.envs, self.locks, self.warm]
        if environment is not None:
            folders += [environment, environment / META, environment / "bin",
                        *sorted((environment / "lib").glob("python*/site-packages"))]
        safety.check(folders)

    def damage(self, key: str) -> str | None:
        """What is wrong with an environment marked complete (None: nothing): its interpreter
        gone (a base Python removed or moved) or emptied, or its activation unreadable."""
        root = self.env_dir(key)
        try:
            info = os.stat(root / "bin" / "python")  # through the link, to the interpreter
        except OSError:
            return "its interpreter is missing"
        if info.st_size == 0 or not info.st_mode & 0o111:
            return "its interpreter is not a program"
        activation = root / META / "activation.json"
        if activation.exists() and not isinstance(read_json(activation), dict):
            return "its activation.json is unreadable"
        return None

    def damaged(self, key: str) -> str | None:
        """Marked complete but damaged: what is wrong (None: not damaged)."""
        if not (self.meta_dir(key) / MARKER).is_file():
            return None
        return self.damage(key)

    def hold(self, key: str) -> int | None:
        """Take a shared lock marking the environment in use, for this process and whatever
        it execs (the descriptor is inheritable). Blocks only while a clean-up removes it.

        In a cache this user cannot write (read-only, or prepared by root) the lock file is
        opened read-only (flock needs no write access), or, when it does not exist and
        cannot be made, not taken (None): nobody can clean such a cache up under us."""
        try:
            self._ensure_root()
            descriptor = open_lock(self.use_lock_path(key))
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            try:
                descriptor = os.open(self.use_lock_path(key), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                return None
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        os.set_inheritable(descriptor, True)
        return descriptor

    def in_use(self, key: str) -> bool:
        """Whether a process runs in the environment (holds its shared in-use lock)."""
        return locked(self.use_lock_path(key))

    def building(self, key: str) -> bool:
        """Whether a start holds the key's build lock right now."""
        return locked(self.build_lock_path(key))

    @contextlib.contextmanager
    def exclusive(self, key: str) -> Iterator[bool]:
        """Hold the build lock and the in-use lock exclusively (the clean-up may then
        remove the environment), or yield False when either is taken."""
        from filelock import FileLock, Timeout

        build = FileLock(str(self.build_lock_path(key)))
        try:
            build.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            descriptor = open_lock(self.use_lock_path(key))
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                yield False
                return
            try:
                yield True
            finally:
                os.close(descriptor)
        finally:
            build.release()

    def trash(self) -> list[Path]:
        """What a removal renamed aside and did not finish deleting (it was killed)."""
        return sorted(self.envs.glob(".trash-*")) if self.envs.is_dir() else []

    def journal(self, **record: Any) -> None:
        """Append one line to the build journal (O_APPEND: whole lines, even from replicas)."""
        line = json.dumps({"time": round(time.time(), 3), "pid": os.getpid(), **record}) + "\n"
        descriptor = os.open(self.root / "journal.jsonl",
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                             safety.file_mode())
        try:
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)

    def touch(self, key: str) -> None:
        """Record a use, for least-recently-used clean-up."""
        stamp = self.meta_dir(key) / LAST_ACCESS
        with contextlib.suppress(OSError):  # a read-only cache still serves; only the
            stamp.touch()  # clean-up order suffers

    @contextlib.contextmanager
    def lock(self, key: str, timeout: float, log: Log) -> Iterator[None]:
        from filelock import FileLock, Timeout  # only a build needs it, never the warm path

        self._ensure_root()
        lock = FileLock(str(self.build_lock_path(key)))
        owner_file = self.locks / f"{key}.owner"
        deadline = time.monotonic() + timeout
        poll = 0.0  # first try without waiting, so a wait is announced at once
        while True:
            remaining = deadline - time.monotonic()
            try:
                lock.acquire(timeout=max(0.0, min(poll, remaining)))
                break
            except Timeout:
                holder = _read_owner(owner_file)
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"waited {timeout:.0f} s for another start ({holder}) building "
                        f"environment {key}",
                        fix="wait for it to finish, or raise EXTENSIBILITY_LOCK_TIMEOUT",
                    ) from None
                log.phase("lock", f"waiting for {holder} to finish building {key}")
                poll = LOCK_POLL_SECONDS
        try:
            import socket

            write_atomic(owner_file, json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
            yield
        finally:
            with contextlib.suppress(OSError):
                owner_file.unlink()
            lock.release()

    def begin(self, key: str) -> bool:
        """Start a build (under the lock): anything left at the key's folder is garbage.
        Returns whether there was such a leftover (a crashed or damaged build)."""
        leftover = self.env_dir(key).exists()
        self.discard(key)
        self.envs.mkdir(parents=True, exist_ok=True)
        return leftover

    def publish(self, key: str, document: str, origin: dict[str, Any], *,
                compiled: bool = True) -> None:
        """Record what was built, make the tree safe (safety.secure_tree), then the marker.
        `compiled`: the modules were byte-compiled at build time (else compile.py does it)."""
        meta = self.meta_dir(key)
        meta.mkdir(parents=True, exist_ok=True)
        if compiled:
            write_atomic(meta / COMPILED, "")
        safety.secure_tree(self.env_dir(key))
        write_atomic(meta / KEY_DOCUMENT, document)
        write_atomic(meta / ORIGIN, json.dumps(origin, indent=1, sort_keys=True))
        (meta / LAST_ACCESS).touch()
        write_atomic(meta / MARKER, json.dumps({"key": key, "completed": time.time()}))

    def discard(self, key: str) -> None:
        root = self.env_dir(key)
        if root.exists() or root.is_symlink():
            # Move aside first so a crash half-way through removal leaves no folder that
            # looks like an environment under the key.
            doomed = self.envs / f".trash-{key}-{os.getpid()}-{time.monotonic_ns()}"
            os.rename(root, doomed)
            import shutil  # a removal is never on the warm path

            shutil.rmtree(doomed, ignore_errors=True)

    def entries(self) -> list[Entry]:
        found: list[Entry] = []
        if not self.envs.is_dir():
            return found
        for child in sorted(self.envs.iterdir()):
            if child.name.startswith("."):
                continue
            meta = child / META
            stamp = meta / LAST_ACCESS
            found.append(Entry(
                key=child.name,
                path=child,
                complete=(meta / MARKER).is_file(),
                last_access=stamp.stat().st_mtime if stamp.exists() else None,
                document=read_json(meta / KEY_DOCUMENT),
                origin=read_json(meta / ORIGIN),
            ))
        return found

    def _ensure_root(self) -> None:
        for folder in (self.root, self.envs, self.locks):
            folder.mkdir(mode=safety.folder_mode(), parents=True, exist_ok=True)
        self.check_safe()


def compiled_marker(environment: Path) -> Path:
    return environment / META / COMPILED


def folder_size(path: Path) -> int:
    """Bytes used by the files under `path` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(root, name))
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_blocks * 512
    return total


def write_atomic(path: Path, text: str) -> None:
    """Write `path` whole or not at all: a temporary file made exclusively (O_EXCL, links
    not followed, an unpredictable name), synced, then renamed over `path`."""
    import tempfile

    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, safety.file_mode())
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def open_lock(path: Path) -> int:
    """A lock file, made if missing: private to the cache's owner, links not followed."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, safety.file_mode())


def locked(path: Path) -> bool:
    """Whether someone holds a lock on `path` (probed on a read-only descriptor, so a
    cache this user cannot write can still be listed)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing releases the probe's lock
    return False


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_owner(path: Path) -> str:
    owner = read_json(path)
    if not owner:
        return "another process"
    held = time.time() - float(owner.get("since", time.time()))
    return f"pid {owner.get('pid')} on {owner.get('host')}, for {held:.0f} s"
