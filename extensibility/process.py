"""Every subprocess the entrypoint starts goes through here: installers, probes, the build
check, conda's venv step. Each child dies with us (PR_SET_PDEATHSIG), has a timeout, and its
output is redacted before anyone sees it."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from extensibility.errors import InstallFailed
from extensibility.log import Log
from extensibility.redact import redact_url

TAIL_LINES = 30
HEARTBEAT_SECONDS = 10.0  # a silent installer is announced at least this often
_PR_SET_PDEATHSIG = 1


class Completed:
    """What a finished child left: its exit code, its (redacted) output and the last lines."""

    def __init__(self, returncode: int, output: str, tail: str, timed_out: bool) -> None:
        self.returncode = returncode
        self.output = output  # everything the command printed
        self.tail = tail  # the last lines, for error messages
        self.timed_out = timed_out


def _die_with_parent() -> None:
    # Linux: the child gets SIGKILL when the entrypoint dies (even by SIGKILL), so no
    # orphan keeps writing into a folder the next start is rebuilding.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(command: Sequence[str], env: Mapping[str, str] | None = None, *,
          merge: bool = True) -> subprocess.Popen[str]:
    """Start a child in the background (stdin closed; stderr into stdout unless `merge` is
    false, then kept apart); see `finish`."""
    return subprocess.Popen(list(command), env=None if env is None else dict(env),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, errors="replace",
                            preexec_fn=_die_with_parent)


def finish(process: subprocess.Popen[str], timeout: float) -> Completed:
    """Wait for a `spawn`ed child; kill it after `timeout` seconds. `output` is its stdout;
    `tail`, the last lines of its stderr (of stdout when they were merged)."""
    try:
        output, errors = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        process.kill()
        output, errors = process.communicate()
        timed_out = True
    output = redact_url(output or "")
    lines = [line for line in redact_url(errors or output).splitlines() if line.strip()]
    return Completed(process.returncode, output, "\n".join(lines[-TAIL_LINES:]), timed_out)


def run_captured(command: Sequence[str], timeout: float, env: Mapping[str, str] | None = None,
                 *, merge: bool = True) -> Completed:
    """Run a short command (a version probe, a venv step) and capture what it prints."""
    return finish(spawn(command, env, merge=merge), timeout)


def run_streaming(command: Sequence[str], env: Mapping[str, str], log: Log, label: str,
                  log_file: Path, timeout: float,
                  shown: Mapping[str, str] | None = None) -> Completed:
    """Run an installer: log the command (and the `shown` variables of `env`, redacted),
    pass its output on as progress lines and into `log_file`, keep a tail, stop it on a
    timeout."""
    given = [f"{name}={value}" for name, value in sorted((shown or {}).items())]
    log.phase("install", f"running {label}: {redact_url(' '.join([*given, *command]))}")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    lines: list[str] = []
    with log_file.open("a", encoding="utf-8") as record, spawn(command, env) as process:
        assert process.stdout is not None
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            process.kill()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        heard = threading.Event()  # set by every line; the heartbeat waits on it
        finished = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(log, label, heard, finished, tail),
                                daemon=True)
        beat.start()
        try:
            for raw in process.stdout:
                line = redact_url(raw.rstrip())
                record.write(line + "\n")
                lines.append(line)
                heard.set()
                if line.strip():
                    tail.append(line)
                    log.progress(label, line)
        except BaseException:
            process.kill()  # never leave an installer running behind us
            raise
        finally:
            timer.cancel()
            finished.set()
            heard.set()
            beat.join()
    return Completed(process.returncode, "\n".join(lines), "\n".join(tail), expired.is_set())


def _heartbeat(log: Log, label: str, heard: threading.Event, finished: threading.Event,
               tail: collections.deque[str]) -> None:
    """A line every HEARTBEAT_SECONDS while the installer is silent (a long download or
    compile): a health probe and a person both see the start is alive, and doing what."""
    import time

    started = time.monotonic()
    while not finished.is_set():
        if not heard.wait(HEARTBEAT_SECONDS) and not finished.is_set():
            last = tail[-1] if tail else "no output yet"
            log.phase("install", f"{label} still running, {time.monotonic() - started:.0f} s "
                      f"(last: {last[:120]})")
        heard.clear()


def check(completed: Completed, label: str, subject: str, timeout: float, fix: str) -> None:
    """Turn a failed installer run into one clear error (exit 95)."""
    if completed.timed_out:
        raise InstallFailed(f"{label} did not finish within {timeout:.0f} s installing "
                            f"{subject}; it was stopped:\n{completed.tail}",
                            fix="check that the index answers (see the last lines above), or "
                            "raise EXTENSIBILITY_INSTALL_TIMEOUT")
    if completed.returncode == 0:
        return
    if "No space left on device" in completed.output:
        raise InstallFailed(f"no space left on the cache volume while {label} installed "
                            f"{subject}:\n{completed.tail}",
                            fix="free space on the volume of EXTENSIBILITY_CACHE_DIR, or point "
                            "it at a larger one (extensibility gc removes unused environments)")
    failure = InstallFailed(f"{label} failed (exit {completed.returncode}) installing "
                            f"{subject}:\n{completed.tail}", fix=fix)
    failure.output = completed.output
    raise failure
