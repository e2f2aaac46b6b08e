"""The background byte-compile itself, run as a script by the environment's own interpreter
(its `.pyc` files must carry that interpreter's cache tag), which may be any Python 3:

    python -I compile_child.py LOCK MARKER FIRST FOLDER...

It holds an exclusive `flock` on LOCK while it runs and writes MARKER when it is done. A lock
held on an open descriptor is released by the kernel when every process sharing that
descriptor is gone, so the worker processes (forked, they share it) close their copy first
thing, and are killed by the kernel when this process dies (PR_SET_PDEATHSIG): a `kill -9`
of this process, as an out-of-memory kill would do, frees the lock at once and the next
start compiles again. Nothing here imports the project (stdlib only), except the tests' pause.
"""

from __future__ import annotations

import compileall
import fcntl
import functools
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# test suites are compiled last: the server imports none of them
TESTS = re.compile(r"[/\\](tests?|testing)[/\\]")


def die_with_parent(parent: int, lock: int) -> None:
    """A worker's first act: die when `parent` dies, and drop its copy of the lock."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the lock is still dropped below
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    os.close(lock)


def sources(folder: str) -> Iterator[str]:
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(current, name)


def compile_one(path: str, skip: re.Pattern[str] | None) -> bool:
    # a file that does not compile (py2 test data) stays so: False, not an error
    return bool(compileall.compile_file(path, quiet=2, rx=skip))


def compile_folders(run: Callable[..., Iterable[bool]], folders: list[str],
                    first_count: int) -> None:
    """The packages the scoring script imports, then everything else, both without test
    suites: what the server is about to import, so the idle core stays ahead of it; the
    test suites last (what is compiled already is skipped). `run`: map, or a pool's."""
    for folder in folders:
        list(run(functools.partial(compile_one, skip=TESTS), sources(folder)))
    for folder in folders[first_count:]:
        list(run(functools.partial(compile_one, skip=None), sources(folder)))


def _pause_for_tests() -> None:
    if os.environ.get("_EXTENSIBILITY_TEST_PAUSE", "").startswith("compile:"):
        from extensibility.faults import pause
        from extensibility.log import Log

        pause(os.environ, "compile", Log())


def main(argv: list[str]) -> int:
    lock_path, marker, first_count, *folders = argv
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another compile of this environment is running
    workers = os.cpu_count() or 1
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=die_with_parent, initargs=(os.getpid(), lock))
        list(pool.map(abs, range(workers)))  # the workers start now
    except OSError:  # no process pool here (a container without a writable /dev/shm)
        _pause_for_tests()
        compile_folders(map, folders, int(first_count))
    else:
        with pool:
            _pause_for_tests()
            compile_folders(functools.partial(pool.map, chunksize=16), folders,
                            int(first_count))
    temporary = f"{marker}.{os.getpid()}.tmp"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    os.replace(temporary, marker)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
