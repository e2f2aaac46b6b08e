"""Run an installer: log the command, stream its output as progress lines, keep a tail."""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from extensibility.log import Log
from extensibility.redact import redact_text

TAIL_LINES = 30


@dataclass(frozen=True)
class Completed:
    returncode: int
    output: str  # everything the command printed
    tail: str  # the last lines, for error messages


def run_streaming(command: Sequence[str], env: Mapping[str, str], log: Log, label: str,
                  log_file: Path) -> Completed:
    log.phase("install", f"running {label}: {redact_text(' '.join(command))}")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    lines: list[str] = []
    with log_file.open("a", encoding="utf-8") as record, subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, errors="replace",
    ) as process:
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = redact_text(raw.rstrip())
                record.write(line + "\n")
                lines.append(line)
                if line.strip():
                    tail.append(line)
                    log.progress(label, line)
        except BaseException:
            process.kill()  # never leave an installer running behind us
            raise
    return Completed(process.returncode, "\n".join(lines), "\n".join(tail))
