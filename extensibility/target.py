"""Prepare deployments ahead of time, for a target interpreter that may not be this one:
`extensibility wheelhouse` (a folder of wheels plus a manifest, for EXTENSIBILITY_WHEELHOUSE)
and `extensibility prepare --target` (a folder for AZUREML_EXTRA_PYTHON_LIB_PATH).

Both are pip with `--only-binary :all:` (a target's wheels cannot be built here), reading the
request through our parser first, so a malformed line fails the same way as at start.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from extensibility.errors import RequestNotSupported, UsageError
from extensibility.inputs import read_request_file
from extensibility.installers.options import pip_flags, pip_sources
from extensibility.log import Log
from extensibility.process import check, run_streaming
from extensibility.requirements import RequirementsSpec, parse_requirements
from extensibility.settings import Settings

MANIFEST = "wheelhouse.json"


@dataclass(frozen=True)
class Target:
    """The interpreter the wheels are for; all None: the one running this command."""

    python_version: str | None = None
    platforms: tuple[str, ...] = ()
    abi: str | None = None
    implementation: str | None = None

    def pip_flags(self) -> list[str]:
        flags: list[str] = []
        if self.python_version:
            flags += ["--python-version", self.python_version]
        for platform in self.platforms:
            flags += ["--platform", platform]
        if self.abi:
            flags += ["--abi", self.abi]
        if self.implementation:
            flags += ["--implementation", self.implementation]
        return flags

    def is_current(self) -> bool:
        return not self.pip_flags()


def read_request(path: Path, env: Mapping[str, str], target: Target, settings: Settings,
                 log: Log) -> RequirementsSpec:
    """A requirements file, or a conda file's PyPI part: its translated dependencies and its
    `pip:` section, as the overlay would install them for `target`'s Python."""
    from extensibility.lockfile import is_lock_file

    if is_lock_file(path):
        raise RequestNotSupported(f"{path} is a lock file: `wheelhouse` and `prepare --target` "
                                  "read requirements and conda files only",
                                  fix="give the requirements file the lock was made from "
                                  "(-r FILE)")
    if path.suffix.lower() not in (".yml", ".yaml"):
        return parse_requirements(path, env)
    from extensibility.conda.request import read_conda_request

    version = target.python_version
    if version and "." not in version:  # pip's "311" form
        version = f"{version[0]}.{version[1:]}"
    from extensibility.image import current_image

    conda, spec = read_conda_request(settings, path, read_request_file(path, "conda file"),
                                     env, version, current_image().distributions)
    for line in conda.describe():
        log.phase("conda", line)
    if conda.layout is not None:
        log.warning("conda", f"{' '.join(conda.specs)} come from conda channels, not wheels: "
                    "for an offline start, also mount a channel folder and set "
                    "EXTENSIBILITY_CONDA_CHANNELS")
    return spec


def build_wheelhouse(requirements: Path, spec: RequirementsSpec, output: Path, target: Target,
                     build_sdists: bool, env: Mapping[str, str], log: Log,
                     timeout: float) -> Path:
    """Download (or build) every wheel the request needs into `output`; write the manifest."""
    if build_sdists and not target.is_current():
        raise UsageError("--build-sdists builds wheels for this interpreter only; it cannot "
                         "be combined with --python-version/--platform/--abi/--implementation",
                         fix="run the command inside the target image instead")
    output.mkdir(parents=True, exist_ok=True)
    arguments = ["wheel", "--wheel-dir", str(output)] if build_sdists else [
        "download", "--dest", str(output), "--only-binary", ":all:", *target.pip_flags()]
    _run_pip(arguments, requirements, spec, output, env, log, timeout)
    return _write_manifest(output, requirements, target)


def prepare_target(requirements: Path, spec: RequirementsSpec, folder: Path, target: Target,
                   env: Mapping[str, str], log: Log, timeout: float) -> None:
    """Install the request into `folder`, as AZUREML_EXTRA_PYTHON_LIB_PATH expects."""
    folder.mkdir(parents=True, exist_ok=True)
    flags = ["--only-binary", ":all:", *target.pip_flags()] if not target.is_current() else []
    _run_pip(["install", "--target", str(folder), "--no-warn-script-location", *flags],
             requirements, spec, folder, env, log, timeout)


def _run_pip(arguments: Sequence[str], requirements: Path, spec: RequirementsSpec,
             folder: Path, env: Mapping[str, str], log: Log, timeout: float) -> None:
    request = folder / ".requirements.txt"
    request.write_text("".join(r.installer_line() + "\n" for r in spec.requirements),
                       encoding="utf-8")
    command = [sys.executable, "-m", "pip", *arguments, "--disable-pip-version-check",
               "--no-input", "--progress-bar", "off", "-r", str(request),
               *pip_flags(spec.options)]
    if spec.constraints:
        constraints = folder / ".constraints.txt"
        constraints.write_text("".join(r.installer_line() + "\n" for r in spec.constraints),
                               encoding="utf-8")
        command += ["-c", str(constraints)]
    try:
        sources = pip_sources(spec.options, env)
        completed = run_streaming(command, {**env, **sources}, log, "pip", folder / ".build.log",
                                  timeout, shown=sources)
        check(completed, "pip", str(requirements), timeout,
              fix="a package without a wheel for the target needs --build-sdists (run inside "
              "the target image), or a wheel published for it")
    finally:
        request.unlink(missing_ok=True)
        (folder / ".constraints.txt").unlink(missing_ok=True)


def _write_manifest(output: Path, requirements: Path, target: Target) -> Path:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    wheels = []
    for path in sorted(output.glob("*.whl")):
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        wheels.append({"file": path.name, "name": str(name), "version": str(version),
                       "tags": sorted(str(t) for t in tags),
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    manifest = output / MANIFEST
    manifest.write_text(json.dumps({
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "requirements": str(requirements),
        "target": {"python_version": target.python_version, "platforms": list(target.platforms),
                   "abi": target.abi, "implementation": target.implementation}
        if not target.is_current() else f"this interpreter ({sys.version.split()[0]})",
        "wheels": wheels,
    }, indent=1), encoding="utf-8")
    return manifest
