"""Run an installer: log the command, stream its output as progress lines, keep a tail,
stop it on a timeout, and never let it outlive us."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from extensibility.errors import InstallFailed
from extensibility.log import Log
from extensibility.redact import redact_url

TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Completed:
    returncode: int
    output: str  # everything the command printed
    tail: str  # the last lines, for error messages
    timed_out: bool


def _die_with_parent() -> None:
    # Linux: the installer gets SIGKILL when the entrypoint dies (even by SIGKILL), so no
    # orphan keeps writing into a folder the next start is rebuilding.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_streaming(command: Sequence[str], env: Mapping[str, str], log: Log, label: str,
                  log_file: Path, timeout: float) -> Completed:
    log.phase("install", f"running {label}: {redact_url(' '.join(command))}")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    lines: list[str] = []
    with log_file.open("a", encoding="utf-8") as record, subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, errors="replace", preexec_fn=_die_with_parent,
    ) as process:
        assert process.stdout is not None
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            process.kill()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            for raw in process.stdout:
                line = redact_url(raw.rstrip())
                record.write(line + "\n")
                lines.append(line)
                if line.strip():
                    tail.append(line)
                    log.progress(label, line)
        except BaseException:
            process.kill()  # never leave an installer running behind us
            raise
        finally:
            timer.cancel()
    return Completed(process.returncode, "\n".join(lines), "\n".join(tail), expired.is_set())


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
    raise InstallFailed(f"{label} failed (exit {completed.returncode}) installing {subject}:\n"
                        f"{completed.tail}", fix=fix)
