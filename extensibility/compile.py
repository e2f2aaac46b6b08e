"""Byte-compiling an environment without making the server wait for it.

Compiling every module of a large set (numpy, pandas, scipy, scikit-learn: about 3 800
files) takes seconds, most of a cold start. A start that serves (`run`) installs without
compiling, publishes, hands off, and compiles in a background child at the lowest CPU
priority; the server's own imports compile what they touch first, so its first request does
not wait either. `prepare` (image build, init containers: the cache may be read-only for
the server) compiles while installing, as does `EXTENSIBILITY_COMPILE=build`.

Safety: the build creates every `__pycache__` folder itself, under its strict umask, before
the environment is secured and published. The background child and the server then only
write files into those folders, and Python gives a `.pyc` the mode of its source, so nothing
becomes writable by others whatever the server's umask.

One compile per environment at a time: the child (compile_child.py) holds `locks/KEY.compile`
and writes the `compiled` marker when it is done. A restart before that finds the marker
missing and the lock held, and starts nothing; a restart after a killed compile starts it
again: the lock is an `flock` the kernel releases with its last holder, and the child's
workers die with it and never keep the lock's descriptor. A publisher waits for a compile
for a bounded time only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from extensibility.log import Log
from extensibility.store import META, Store, compiled_marker, locked

CHILD = Path(__file__).with_name("compile_child.py")  # run by the environment's interpreter
COMPILE_TIMEOUT = 1800.0  # how long a publisher waits for a compile, unless told otherwise
POLL_SECONDS = 0.5


class CompileTimeout(Exception):
    """A compile did not finish in time (the message says which and how long)."""


def site_folders(environment: Path) -> list[Path]:
    """Where an environment's modules are: its site-packages (and a conda prefix's)."""
    return sorted([*environment.glob("lib/python*/site-packages"),
                   *environment.glob("conda/lib/python*/site-packages")])


def prepare_pycache(environment: Path) -> int:
    """Create the `__pycache__` folders the compile and the server will fill (build time,
    under the strict umask). Returns how many."""
    made = 0
    for folder in site_folders(environment):
        for current, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            if any(name.endswith(".py") for name in files):
                cache = Path(current, "__pycache__")
                if not cache.exists():
                    cache.mkdir()
                    made += 1
    return made


def is_compiled(environment: Path) -> bool:
    return compiled_marker(environment).exists()


def imported_packages(script: Path, environment: Path) -> list[Path]:
    """The environment's package folders the scoring script imports (read with `ast`, not
    run), in the order it names them: compiled first, so the idle core stays ahead of the
    server's own imports."""
    import ast

    from extensibility.inputs import read_regular

    try:
        tree = ast.parse(read_regular(script, 1 << 20))
    except (OSError, ValueError, SyntaxError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):  # init()'s imports too
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module.split(".")[0])
    return [folder / name for name in dict.fromkeys(names)
            for folder in site_folders(environment) if (folder / name).is_dir()]


def start_background(store: Store, environment: Path, log: Log,
                     script: Path | None = None) -> None:
    """Compile `environment` in a low-priority child, unless it is compiled, being compiled,
    or this user cannot write it (a read-only cache was compiled when it was prepared).
    `script`: the scoring script, whose imports are compiled first."""
    key = environment.name
    if is_compiled(environment) or not os.access(environment / META, os.W_OK):
        return
    lock = store.compile_lock_path(key)
    if locked(lock):
        return  # a compile started by an earlier start is still running
    import subprocess

    first = imported_packages(script, environment) if script is not None else []
    child = subprocess.Popen(
        _command(store, environment, first),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=_lowest_priority, close_fds=True)
    log.phase("compile", f"byte-compiling {environment} in the background (pid {child.pid}, "
              "lowest CPU priority); the server does not wait for it")


def compile_now(store: Store, environment: Path, timeout: float = COMPILE_TIMEOUT) -> None:
    """Return once `environment` is compiled: wait for a compile that is running, or run
    one here (the remote cache publishes only compiled environments). Raises
    CompileTimeout after `timeout` seconds (a compile that never ends must not hold a
    publisher, and its lease, forever); returns without the marker when the compile here
    fails (retrying it would fail the same way, for ever)."""
    import fcntl
    import subprocess

    from extensibility.store import open_lock

    deadline = time.monotonic() + timeout
    while not is_compiled(environment):
        descriptor = open_lock(store.compile_lock_path(environment.name))
        try:
            while True:  # polled, so that the wait has an end
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _timed_out(environment, timeout) from None
                    time.sleep(POLL_SECONDS)
        finally:
            os.close(descriptor)
        if not is_compiled(environment):
            try:
                done = subprocess.run(_command(store, environment, []),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, check=False,
                                      timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:  # killed: its workers die with it
                raise _timed_out(environment, timeout) from None
            if done.returncode != 0:
                return


def _timed_out(environment: Path, timeout: float) -> CompileTimeout:
    return CompileTimeout(f"the byte-compile of {environment.name} did not finish within "
                          f"{timeout:.0f} s (EXTENSIBILITY_INSTALL_TIMEOUT)")


def _command(store: Store, environment: Path, first: list[Path]) -> list[str]:
    # the whole site folders after the scoring script's packages: what is compiled is skipped
    folders = [str(f) for f in (*first, *site_folders(environment))]
    return [str(environment / "bin" / "python"), "-I", str(CHILD),
            str(store.compile_lock_path(environment.name)),
            str(compiled_marker(environment)), str(len(first)), *folders]


def _lowest_priority() -> None:
    # SCHED_IDLE: run only on CPU time nobody else wants (the booting server comes first);
    # where it is not available, the lowest nice value
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
