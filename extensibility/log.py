"""Start log on stderr: one line per phase with the elapsed time, as text or JSON lines."""

from __future__ import annotations

import json
import sys
import time

from extensibility.errors import ExtensibilityError
from extensibility.redact import redact_url

TYPE_CHECKING = False  # typing costs the warm path an import; mypy knows this name
if TYPE_CHECKING:
    from typing import Any, TextIO


QUIET, NORMAL, VERBOSE = 0, 1, 2


def escaped(text: str) -> str:
    """`text` read from outside (a manifest's field, a member's name, a lease holder's
    record, a store's error), safe on one text log line: control and other unprintable
    characters become escapes (`\\n`, `\\x1b`, `\\u202e`), so they can neither forge a
    line nor reach a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class Log:
    def __init__(self, fmt: str = "text", stream: TextIO | None = None,
                 started: float | None = None, verbosity: int = NORMAL) -> None:
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic() if started is None else started
        # QUIET: a command's outcome line, warnings and errors; NORMAL: every phase line and
        # the installers' output; VERBOSE: the installers run verbosely too
        self.verbosity = verbosity

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def phase(self, phase: str, message: str, **fields: Any) -> None:
        """A step of the start: inputs, key, cache, install (not when quiet)."""
        if self.verbosity > QUIET:
            self._emit("info", phase, message, fields)

    def outcome(self, phase: str, message: str, **fields: Any) -> None:
        """What a command ended with (the hand-off, the environment ready): shown even when
        quiet, so a quiet start says one line."""
        self._emit("info", phase, message, fields)

    def progress(self, source: str, line: str) -> None:
        """One line of installer output, passed through as it arrives (not when quiet)."""
        if self.verbosity > QUIET:
            self._emit("progress", source, line, {})

    def warning(self, phase: str, message: str, **fields: Any) -> None:
        self._emit("warning", phase, message, fields)

    def failure(self, error: ExtensibilityError) -> None:
        fields: dict[str, Any] = {"exit_code": error.exit_code}
        if error.fix:
            fields["fix"] = error.fix
        self._emit("error", error.title, error.message, fields)

    def _emit(self, level: str, phase: str, message: str, fields: dict[str, Any]) -> None:
        message = redact_url(message)
        fields = {k: redact_url(v) if isinstance(v, str) else v for k, v in fields.items()}
        elapsed = self.elapsed()
        if self.fmt == "json":
            record = {"ts": round(time.time(), 3), "elapsed": round(elapsed, 3), "level": level,
                      "phase": phase, "message": message, **fields}
            line = json.dumps(record, default=str, sort_keys=False)
        elif level == "progress":
            line = f"extensibility {elapsed:7.3f}s   | {message}"
        else:
            marker = {"info": "", "warning": "WARNING ", "error": "ERROR "}[level]
            line = f"extensibility {elapsed:7.3f}s {marker}{phase}: {message}"
            if level == "error":
                line += f" (exit {fields['exit_code']})"
                if "fix" in fields:
                    line += f"\nextensibility {elapsed:7.3f}s   fix: {fields['fix']}"
        self.stream.write(line + "\n")
        self.stream.flush()
