"""pip, run by the overlay's interpreter.

The image's pip is importable there (through the overlay's .pth), and pip sees the image's
packages as installed: what the image provides in a satisfying version is left alone, an
upgrade goes into the overlay ("not uninstalling ... outside environment").
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from extensibility.installers.base import InstallJob, InstallResult, write_request_files
from extensibility.installers.options import pip_flags, pip_sources
from extensibility.log import Log
from extensibility.process import check, run_streaming
from extensibility.redact import redact_url

_DEBUG_LOG = "pip-debug.log"
_FETCH_FAILED = "Could not fetch URL"
_INSTALLED_RE = re.compile(r"^Successfully installed (?P<list>.+)$", re.MULTILINE)


class PipInstaller:
    def install(self, job: InstallJob, log: Log) -> InstallResult:
        requirements, constraints = write_request_files(job, lock=job.spec.exact and reads_locks())
        pip = ([sys.executable, "-m", "pip", "--python", str(job.python)] if job.isolated
               else [str(job.python), "-m", "pip"])
        command = [*pip, "install", "--no-input", "--progress-bar",
                   "off", "--disable-pip-version-check", "--no-warn-script-location",
                   "-r", str(requirements)]
        if constraints:
            command += ["-c", str(constraints)]
        if job.spec.exact:  # a lock: exactly its files, nothing resolved
            command.append("--no-deps")
        if not job.compile:
            command.append("--no-compile")
        if job.verbose:
            command.append("-v")
        command += pip_flags(job.spec.options)
        # pip tells an index's 403 (and 404, 5xx) only in its debug log: kept for the failure
        debug_log = job.work_dir / _DEBUG_LOG
        command += ["--log", str(debug_log)]
        sources = pip_sources(job.spec.options, job.env)
        try:
            completed = run_streaming(command, {**job.env, **sources}, log, "pip",
                                      job.work_dir / "build.log", job.timeout, shown=sources)
        finally:
            refusals = _index_refusals(debug_log)
        if completed.returncode != 0 and refusals:
            completed.output += "\n" + "\n".join(refusals)
        check(completed, "pip", str(job.spec.files[0]), job.timeout,
              fix="read pip's message above; fix the requirement it names, or make the "
              "package available from the index")
        return InstallResult(parse_installed(completed.output))


def reads_locks() -> bool:
    """Whether this pip (the image's, which the overlay runs) installs a lock file: pip 26+.
    An older one is given the lock's files as `name @ URL --hash` lines (pip freeze then
    shows them as direct URLs)."""
    from importlib import metadata

    try:
        major = metadata.version("pip").split(".")[0]
    except metadata.PackageNotFoundError:
        return False
    return major.isdigit() and int(major) >= 26


def _index_refusals(debug_log: Path) -> list[str]:
    """The index pages pip could not fetch, from its debug log (redacted), which is then
    removed: it is not kept with the environment."""
    try:
        with debug_log.open(encoding="utf-8", errors="replace") as lines:
            found = [redact_url(line[line.index(_FETCH_FAILED):].strip()) for line in lines
                     if _FETCH_FAILED in line]  # without the log's timestamp
        debug_log.unlink()
    except OSError:
        return []
    return list(dict.fromkeys(found))[:5]


def parse_installed(output: str) -> tuple[str, ...]:
    """`name==version` of what pip's "Successfully installed ..." line lists."""
    match = _INSTALLED_RE.search(output)
    return tuple(_pin(item) for item in match.group("list").split()) if match else ()


def _pin(item: str) -> str:
    name, _, version = item.rpartition("-")
    return f"{name}=={version}" if name else item
