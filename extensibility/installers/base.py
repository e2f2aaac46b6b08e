"""The interface every installer backend implements, and what they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from extensibility.installers.config import CONSTRAINTS_FILE, LOCK_FILE, REQUIREMENTS_FILE
from extensibility.log import Log
from extensibility.requirements import RequirementsSpec


@dataclass(frozen=True)
class InstallJob:
    python: Path  # the overlay's interpreter: installs go into its site-packages
    image_python: str  # the interpreter running the entrypoint, whose packages are the image's
    spec: RequirementsSpec
    work_dir: Path  # where request files and the build log are written
    env: Mapping[str, str]  # the installer's environment (the user's PIP_*/UV_* included)
    timeout: float  # seconds each installer run may take
    held: tuple[str, ...] = ()  # "name==version" constraints protecting the server
    # the target does not see the image (a venv on a conda prefix's Python): uv resolves
    # against `image_python` (then the target itself), pip runs from the image with --python
    isolated: bool = False
    # byte-compile while installing (False: the start compiles in the background, compile.py)
    compile: bool = True
    verbose: bool = False  # the installer's own verbose output (`-v`)


@dataclass(frozen=True)
class InstallResult:
    installed: tuple[str, ...]  # "name==version" (or a URL) of what went into the overlay


class Installer(Protocol):
    def install(self, job: InstallJob, log: Log) -> InstallResult: ...


def write_request_files(job: InstallJob, *,
                        lock: bool = False) -> tuple[Path, Path | None]:
    """The normalised request as files both installers read (absolute paths, hashes).
    `lock`: a lock's selection as a lock file (PEP 751), which uv and pip 26 install as an
    index would (no direct-URL record), instead of `name @ URL` lines."""
    if lock and job.spec.exact:
        from extensibility.lockfile.write import selection_text

        selection = job.work_dir / LOCK_FILE
        selection.write_text(selection_text(job.spec.requirements), encoding="utf-8")
        return selection, None
    requirements = job.work_dir / REQUIREMENTS_FILE
    requirements.write_text("".join(r.installer_line() + "\n" for r in job.spec.requirements),
                            encoding="utf-8")
    # a lock's exact set was checked against what is held before any install (protection.py)
    held = [] if job.spec.exact else list(job.held)
    lines = [r.installer_line() for r in job.spec.constraints] + held
    if not lines:
        return requirements, None
    constraints = job.work_dir / CONSTRAINTS_FILE
    constraints.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return requirements, constraints
