"""After a build, before its marker: is overlay + image consistent, can the server start?

The dependency check is pip check's, done in-process over the overlay's import path (the
overlay's site-packages, then the image's), so it also covers packages only in the image.
Problems the image already had are not blamed on the request. After the request replaced
the server's package, only what the new server and the request need counts: a package left
in the image that only the replaced server needed is a note, and the boot probe decides.
"""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path

from extensibility.boot import probe_code, probe_environment
from extensibility.image import canonical_name
from extensibility.process import finish, spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.requirements import Requirement


def _installed(paths: Sequence[str]) -> dict[str, metadata.Distribution]:
    installed: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=list(paths)):
        installed.setdefault(canonical_name((dist.metadata.get_all("Name") or [""])[0]), dist)
    return installed


def _requirements(dist: metadata.Distribution) -> Iterator[Requirement]:
    """A distribution's requirements whose markers hold here (extras not followed)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for text in dist.requires or ():
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        yield requirement


def _findings(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(requirer, problem) for every missing or unsatisfied requirement on an import path."""
    installed = _installed(paths)
    problems: list[tuple[str, str]] = []
    for name, dist in sorted(installed.items()):
        for requirement in _requirements(dist):
            found = installed.get(canonical_name(requirement.name))
            if found is None:
                problems.append((name, f"{name} {dist.version} requires {requirement}, "
                                 "which is not installed"))
            elif not requirement.specifier.contains(found.version, prereleases=True):
                problems.append((name, f"{name} {dist.version} requires {requirement}, "
                                 f"but {canonical_name(requirement.name)} {found.version} "
                                 "is installed"))
    return problems


def dependency_problems(paths: Sequence[str]) -> list[str]:
    """`pip check`'s findings for an import path: missing or unsatisfied requirements."""
    return [problem for _, problem in _findings(paths)]


def new_problems(overlay_paths: Sequence[str], image_paths: Sequence[str],
                 scope: Collection[str] | None = None) -> tuple[list[str], list[str]]:
    """The problems the environment adds to the image's own: (those that count, the rest).
    With a `scope` (package names), only a requirement of a package in it counts; the rest
    are reported as notes (what only a replaced server needed)."""
    baseline = set(dependency_problems(image_paths))
    counted: list[str] = []
    noted: list[str] = []
    for requirer, problem in _findings(overlay_paths):
        if problem not in baseline:
            (counted if scope is None or requirer in scope else noted).append(problem)
    return counted, noted


def needed_by(paths: Sequence[str], roots: Iterable[str]) -> set[str]:
    """The installed packages `roots` need on an import path, themselves included,
    transitively (the same requirements the check follows)."""
    installed = _installed(paths)
    queue = [name for name in roots if name in installed]
    seen: set[str] = set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        queue += [dependency for dependency in
                  (canonical_name(r.name) for r in _requirements(installed[name]))
                  if dependency in installed and dependency not in seen]
    return seen


def start_boot_probe(python: Path, module: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Prove the server can start (boot.py), with the environment's interpreter, in the
    background (it takes as long as the server's own boot; the dependency check runs
    meanwhile)."""
    return spawn([str(python), "-c", probe_code(module)], probe_environment(env))


def boot_error(process: subprocess.Popen[str], timeout: float) -> str | None:
    """The probe's error text, or None when the server could start."""
    completed = finish(process, timeout)
    if completed.timed_out:
        return f"the server's boot did not finish within {timeout:.0f} s"
    return None if completed.returncode == 0 else completed.output.strip()[-3000:]
