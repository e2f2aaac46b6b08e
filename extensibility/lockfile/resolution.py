"""What a build would install into the overlay, with each file's URL and hashes: the packages
`extensibility lock` writes.

The resolution is the build's own: uv's dry run against the image (as installers/uv.py
makes it), or pip's dry run from the image's Python (pip sees the image's packages as
installed, as it does from the overlay), with the same request files, held constraints,
flags and package sources. Then each pin is located on the index: pip's installation report
carries the URL and hashes; for uv, `uv pip compile --format pylock.toml --no-deps` of the
exact pins. `prepare --lock` locates the packages of the environment it prepared instead.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from extensibility.errors import InstallFailed, RequestNotSupported
from extensibility.image import canonical_name
from extensibility.installers.base import InstallJob, write_request_files
from extensibility.installers.config import installer_environment
from extensibility.installers.options import pip_flags, pip_sources, uv_flags, uv_sources
from extensibility.log import VERBOSE, Log
from extensibility.process import check, run_streaming
from extensibility.resolve import Resolved
from extensibility.start import Start

Package = dict[str, Any]  # one `[[packages]]` table, as PEP 751 names its fields
_HASH_NAMES = ("sha256", "sha384", "sha512")


def request_packages(start: Start, resolved: Resolved, log: Log) -> list[Package]:
    """What a build of `resolved` would add to the image, located."""
    with tempfile.TemporaryDirectory(prefix="extensibility-lock-") as work:
        job = _job(start, resolved, Path(work), resolved.protection.constraint_lines())
        if start.installer == "uv":
            return _uv_locate(start, job, _uv_pins(start, job, log), log)
        requirements, constraints = write_request_files(job)
        request = ["-r", str(requirements)] + (["-c", str(constraints)] if constraints else [])
        return _pip_report(start, job, request, log)


def environment_packages(start: Start, resolved: Resolved, environment: Path,
                         log: Log) -> list[Package]:
    """What `environment` holds besides the image (its overlay's own packages), located."""
    pins = sorted(_pin(folder, canonical_name(folder.name.split("-", 1)[0]),
                       folder.name[:-len(".dist-info")].split("-", 1)[-1])
                  for site in environment.glob("lib/python*/site-packages")
                  for folder in site.glob("*-*.dist-info"))
    with tempfile.TemporaryDirectory(prefix="extensibility-lock-") as work:
        job = _job(start, resolved, Path(work), [])
        if start.installer == "uv":
            return _uv_locate(start, job, pins, log)
        pinned = Path(work) / "pins.txt"
        pinned.write_text("".join(pin + "\n" for pin in pins), encoding="utf-8")
        return _pip_report(start, job, ["--no-deps", "--ignore-installed", "-r", str(pinned)],
                           log)


def _pin(dist_info: Path, name: str, version: str) -> str:
    """`name==version`, or `name @ URL` for what was installed from a URL (direct_url.json)."""
    try:
        direct = json.loads((dist_info / "direct_url.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{name}=={version}"
    url = direct.get("url") if isinstance(direct, dict) else None
    if not isinstance(url, str) or "dir_info" in direct or "vcs_info" in direct:
        raise RequestNotSupported(f"{name} {version} was installed from a local folder or a "
                                  "VCS checkout: a lock can only pin files by their hashes",
                                  fix="build a wheel of it and require that instead")
    return f"{name} @ {url}"


def _job(start: Start, resolved: Resolved, work: Path, held: Sequence[str]) -> InstallJob:
    settings = start.settings
    checked_only = any(settings.policy().values())
    env = installer_environment(start.env, start.installer, settings.cache_dir, settings.retries,
                                offline=settings.wheelhouse is not None,
                                checked_only=checked_only)
    return InstallJob(python=Path(start.image.python), image_python=start.image.python,
                      spec=resolved.spec, work_dir=work, env=env,
                      timeout=settings.install_timeout, held=tuple(held or ()))


def _run(command: list[str], job: InstallJob, sources: Mapping[str, str], label: str,
         log: Log) -> str:
    if log.verbosity >= VERBOSE:
        command.append("-v")
    completed = run_streaming(command, {**job.env, **sources}, log, label,
                              job.work_dir / "lock.log", job.timeout, shown=sources)
    check(completed, label, str(job.spec.files[0]), job.timeout,
          fix="read the installer's message above; the lock is written from what a build "
          "would install, so the request must install")
    return completed.output


def _uv_pins(start: Start, job: InstallJob, log: Log) -> list[str]:
    """The pins uv's dry run would add (the build's first step, installers/uv.py)."""
    from extensibility.installers.uv import parse_dry_run

    if not job.spec.requirements:
        return []
    requirements, constraints = write_request_files(job)
    request = ["-r", str(requirements)] + (["-c", str(constraints)] if constraints else [])
    assert start.uv_binary is not None
    output = _run([start.uv_binary, "pip", "install", "--dry-run", "--python", job.image_python,
                   *request, *uv_flags(job.spec.options), "--no-progress"], job,
                  uv_sources(job.spec.options, job.env), "uv resolve", log)
    pins = [line.split(" --hash=")[0] for line in parse_dry_run(output, job.spec)]
    for pin in pins:
        if pin.startswith("-e "):
            raise RequestNotSupported(f"{pin[3:]} is installed editable: a lock can only pin "
                                      "files by their hashes",
                                      fix="require a built wheel of it instead")
    return pins


def _uv_locate(start: Start, job: InstallJob, pins: Sequence[str], log: Log) -> list[Package]:
    """Each pin's files and hashes, as uv finds them on the request's index."""
    if not pins:
        return []
    from extensibility.lockfile.read import load

    pinned, output = job.work_dir / "pins.txt", job.work_dir / "pylock.toml"
    pinned.write_text("".join(pin + "\n" for pin in pins), encoding="utf-8")
    flags = [f for f in uv_flags(job.spec.options) if f != "--require-hashes"]
    assert start.uv_binary is not None
    _run([start.uv_binary, "pip", "compile", "--format", "pylock.toml", "--no-deps",
          "--no-header", "--python", job.image_python, "-o", str(output), str(pinned), *flags,
          "--no-progress"], job, uv_sources(job.spec.options, job.env), "uv lock", log)
    data = output.read_bytes()
    load(output, data)  # validated as any lock we read
    from extensibility.lockfile.read import toml_module

    packages = toml_module().loads(data.decode("utf-8")).get("packages", [])
    return [_absolute_paths({k: v for k, v in p.items() if k in ("name", "version", "index",
                                                                 "wheels", "sdist", "archive")},
                            output.parent) for p in packages]


def _absolute_paths(value: Any, base: Path) -> Any:
    """uv writes a local file's path relative to its output (a temporary folder)."""
    if isinstance(value, dict):
        return {k: str((base / v).resolve()) if k == "path" and isinstance(v, str)
                else _absolute_paths(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute_paths(item, base) for item in value]
    return value


def _pip_report(start: Start, job: InstallJob, request: list[str], log: Log) -> list[Package]:
    """pip's dry run with an installation report, from the image's Python."""
    if not job.spec.requirements and "--no-deps" not in request:
        return []
    report = job.work_dir / "report.json"
    flags = [f for f in pip_flags(job.spec.options)
             if "--no-deps" not in request or f != "--require-hashes"]
    _run([start.image.python, "-m", "pip", "install", "--dry-run", "--quiet", "--report",
          str(report), "--no-input", "--disable-pip-version-check", *request, *flags], job,
         pip_sources(job.spec.options, job.env),
         "pip resolve", log)
    try:
        items = json.loads(report.read_text(encoding="utf-8")).get("install", [])
    except (OSError, ValueError, AttributeError) as exc:
        raise InstallFailed(f"could not read pip's installation report: {exc}",
                            fix="pip 22.2 or later writes it; upgrade pip in the image") from None
    return [_from_report(item) for item in items]


def _from_report(item: Mapping[str, Any]) -> Package:
    metadata, info = item.get("metadata", {}), item.get("download_info", {})
    name, version = canonical_name(str(metadata.get("name"))), str(metadata.get("version"))
    url = str(info.get("url", ""))
    if "dir_info" in info or "vcs_info" in info:
        raise RequestNotSupported(f"{name} is a local folder or a VCS checkout: a lock can "
                                  "only pin files by their hashes",
                                  fix="build a wheel of it and require that instead")
    archive = info.get("archive_info", {})
    hashes = {k: v for k, v in dict(archive.get("hashes") or {}).items() if k in _HASH_NAMES}
    if not hashes and isinstance(archive.get("hash"), str) and "=" in archive["hash"]:
        algorithm, value = archive["hash"].split("=", 1)
        hashes = {algorithm: value} if algorithm in _HASH_NAMES else {}
    local = Path(url[len("file://"):]) if url.startswith("file://") else None
    if not hashes and local is not None and local.is_file():
        from extensibility.fingerprint import sha256_file

        hashes = {"sha256": sha256_file(local)}
    if not hashes:
        raise RequestNotSupported(f"the index gives no hash for {name} {version} ({url})",
                                  fix="use an index that publishes sha256 hashes (PyPI, "
                                  "pypiserver, devpi and Azure Artifacts do)")
    filename = url.rsplit("/", 1)[-1]
    location = {"path": str(local)} if local is not None else {"url": url}
    file = {"name": filename, **location, "hashes": hashes}
    package: Package = {"name": name, "version": version}
    if item.get("is_direct"):
        package["archive"] = {**location, "hashes": hashes}
    elif filename.endswith(".whl"):
        package["wheels"] = [file]
    else:
        package["sdist"] = file
    return package
