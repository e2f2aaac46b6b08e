"""uv: resolve against the image, then install only the difference into the overlay.

uv does not look past an environment's own site-packages (astral-sh/uv#4466), so installing
straight into the overlay would re-install everything the image already has. Instead:
1. `uv pip install --dry-run --python IMAGE`: uv resolves with the image's packages as the
   installed set (keeping what satisfies) and lists what it would add or replace;
2. `uv pip install --no-deps --python OVERLAY` of exactly those pins.
No package of the image is changed. (uv takes its environment lock on the image during the
dry run: on a writable image that leaves an empty `.lock` file in its prefix.)
"""

from __future__ import annotations

import re
from pathlib import Path

from extensibility.errors import InstallFailed
from extensibility.image import canonical_name
from extensibility.installers.base import InstallJob, InstallResult, write_request_files
from extensibility.installers.config import DELTA_FILE
from extensibility.installers.options import uv_flags, uv_sources
from extensibility.log import Log
from extensibility.process import check, run_streaming
from extensibility.redact import MASK, redact_url
from extensibility.requirements import Requirement, RequirementsSpec

_ADDED_RE = re.compile(r"^ \+ (?P<name>[A-Za-z0-9._-]+)(?:==(?P<version>\S+)| @ (?P<url>\S+))")
_WOULD_INSTALL_RE = re.compile(r"^Would install (?P<count>\d+) package", re.MULTILINE)


class UvInstaller:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    def install(self, job: InstallJob, log: Log) -> InstallResult:
        requirements, constraints = write_request_files(job, lock=True)
        request = ["-r", str(requirements)] + (["-c", str(constraints)] if constraints else [])
        flags = uv_flags(job.spec.options)
        compiling = ["--compile-bytecode"] if job.compile else []
        if job.spec.exact:  # a lock: its selection is the difference already, no dry run
            self._run(job, log, ["pip", "install", "--no-deps", *compiling, "--python",
                                 str(job.python), *request, *flags], "uv install")
            return InstallResult(tuple(r.key_text for r in job.spec.requirements))
        dry_run = self._run(job, log, ["pip", "install", "--dry-run", "--python", job.image_python,
                                    *request, *flags], "uv resolve")
        added = parse_dry_run(dry_run, job.spec)
        if not added:
            log.phase("install", "the image already satisfies every requirement")
            return InstallResult(())
        delta = job.work_dir / DELTA_FILE
        delta.write_text("".join(line + "\n" for line in added), encoding="utf-8")
        self._run(job, log, ["pip", "install", "--no-deps", *compiling, "--python",
                             str(job.python), "-r", str(delta), *flags], "uv install")
        return InstallResult(tuple(_summary(line) for line in added))

    def _run(self, job: InstallJob, log: Log, arguments: list[str], label: str) -> str:
        command = [self.binary, *arguments, "--no-progress", *(["-v"] if job.verbose else [])]
        sources = uv_sources(job.spec.options, job.env)
        completed = run_streaming(command, {**job.env, **sources}, log, label,
                                  job.work_dir / "build.log", job.timeout, shown=sources)
        check(completed, label, str(job.spec.files[0]), job.timeout,
              fix="read uv's message above; fix the requirement it names, or make the "
              "package available from the index (EXTENSIBILITY_INSTALLER=pip to compare)")
        return completed.output


def parse_dry_run(output: str, spec: RequirementsSpec) -> list[str]:
    """Requirement lines for what uv's dry run would add, hashes and editability kept."""
    by_name: dict[str, Requirement] = {r.name: r for r in spec.requirements if r.name}
    editable_paths = {str(Path(r.install_text)): r for r in spec.requirements if r.editable}
    # uv prints URLs without their credentials: the request's own URL is installed instead
    by_shown_url = {_bare(url): url for url in map(_url_of, spec.requirements) if url}
    lines: list[str] = []
    for raw in output.splitlines():
        match = _ADDED_RE.match(raw)
        if not match:
            continue
        name = match.group("name")
        original = by_name.get(canonical_name(name))
        hashes = "".join(f" --hash={h}" for h in original.hashes) if original else ""
        if match.group("version"):
            lines.append(f"{name}=={match.group('version')}{hashes}")
            continue
        url = by_shown_url.get(_bare(match.group("url")), match.group("url"))
        local = url[len("file://"):] if url.startswith("file://") else None
        if local is not None and local in editable_paths:
            lines.append(f"-e {local}")
        else:
            lines.append(f"{name} @ {url}{hashes}")
    expected = _WOULD_INSTALL_RE.search(output)
    if expected and int(expected.group("count")) != len(lines):
        raise InstallFailed(
            f"could not read uv's dry run: it would install {expected.group('count')} packages "
            f"but {len(lines)} were recognised",
            fix="set EXTENSIBILITY_INSTALLER=pip and report this uv version",
        )
    return lines


def _bare(url: str) -> str:
    """A URL without its userinfo, whether uv masked it or left it out."""
    return redact_url(url).replace(f"{MASK}@", "")


def _url_of(requirement: Requirement) -> str | None:
    """The URL of a direct reference (`name @ URL` or a bare URL), without its marker."""
    text = requirement.install_text.split(";")[0].strip()
    url = text.split(" @ ", 1)[1].strip() if " @ " in text else text
    return url if "://" in url else None


def _summary(line: str) -> str:
    return redact_url(line.split(" --hash=")[0])
