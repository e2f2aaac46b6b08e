"""After a build, before its marker: is overlay + image consistent, can the server start?

The dependency check is pip check's, done in-process over the overlay's import path (the
overlay's site-packages, then the image's), so it also covers packages only in the image.
Problems the image already had are not blamed on the request.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from extensibility.boot import probe_code, probe_environment
from extensibility.image import canonical_name
from extensibility.process import finish, spawn


def dependency_problems(paths: Sequence[str]) -> list[str]:
    """`pip check`'s findings for an import path: missing or unsatisfied requirements."""
    from packaging.requirements import InvalidRequirement, Requirement

    installed: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=list(paths)):
        installed.setdefault(canonical_name((dist.metadata.get_all("Name") or [""])[0]), dist)
    problems: list[str] = []
    for name, dist in sorted(installed.items()):
        for text in dist.requires or ():
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            found = installed.get(canonical_name(requirement.name))
            if found is None:
                problems.append(f"{name} {dist.version} requires {requirement}, "
                                "which is not installed")
            elif not requirement.specifier.contains(found.version, prereleases=True):
                problems.append(f"{name} {dist.version} requires {requirement}, "
                                f"but {canonical_name(requirement.name)} {found.version} "
                                "is installed")
    return problems


def new_problems(overlay_paths: Sequence[str], image_paths: Sequence[str]) -> list[str]:
    baseline = set(dependency_problems(image_paths))
    return [p for p in dependency_problems(overlay_paths) if p not in baseline]


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
