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

One compile per environment at a time: the child holds `locks/KEY.compile` and writes the
`compiled` marker when it is done. A restart before that finds the marker missing and the
lock held, and starts nothing; a restart after a killed compile starts it again.
"""

from __future__ import annotations

import os
from pathlib import Path

from extensibility.log import Log
from extensibility.store import META, Store, locked

COMPILED = "compiled"
# run by the environment's own interpreter: its .pyc files must carry its cache tag
_CHILD = """
import compileall, fcntl, os, re, sys
lock, marker, first, *folders = sys.argv[1:]
fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(0)
# the packages the scoring script imports, then everything else, both without test suites:
# what the server is about to import (and what those import), so the idle core stays ahead
# of it; the test suites last (compileall skips what is compiled already)
tests = re.compile(r"[/\\\\](tests?|testing)[/\\\\]")
def compile_folder(folder, **options):
    try:
        compileall.compile_dir(folder, quiet=2, workers=0, **options)
    except OSError:  # no process pool here (a container without a writable /dev/shm)
        compileall.compile_dir(folder, quiet=2, workers=1, **options)
for folder in folders:
    compile_folder(folder, rx=tests)
for folder in folders[int(first):]:  # a file that does not compile (py2 test data) stays so
    compile_folder(folder)
temporary = "%s.%d.tmp" % (marker, os.getpid())
os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
os.replace(temporary, marker)
"""

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


def compile_lock_path(store: Store, key: str) -> Path:
    return store.locks / f"{key}.compile"


def is_compiled(environment: Path) -> bool:
    return (environment / META / COMPILED).exists()


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
    lock = compile_lock_path(store, key)
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


def compile_now(store: Store, environment: Path) -> None:
    """Return once `environment` is compiled: wait for a compile that is running, or run
    one here (the remote cache publishes only compiled environments). Returns without the
    marker when the compile here fails: retrying it would fail the same way, for ever."""
    import fcntl
    import subprocess

    from extensibility.store import open_lock

    while not is_compiled(environment):
        descriptor = open_lock(compile_lock_path(store, environment.name))
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # blocks while another compile runs
        finally:
            os.close(descriptor)
        if not is_compiled(environment):
            done = subprocess.run(_command(store, environment, []), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  check=False)
            if done.returncode != 0:
                return


def _command(store: Store, environment: Path, first: list[Path]) -> list[str]:
    # the whole site folders after the scoring script's packages: what is compiled is skipped
    folders = [str(f) for f in (*first, *site_folders(environment))]
    return [str(environment / "bin" / "python"), "-c", _CHILD,
            str(compile_lock_path(store, environment.name)),
            str(environment / META / COMPILED), str(len(first)), *folders]


def _lowest_priority() -> None:
    # SCHED_IDLE: run only on CPU time nobody else wants (the booting server comes first);
    # where it is not available, the lowest nice value
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
