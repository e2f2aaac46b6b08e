"""Keep the user's packages from breaking the scoring server.

Modes (EXTENSIBILITY_PROTECT): `server` holds the server's dependency closure, as installed
in the image, at its installed versions; `image` holds every image package; `off` holds
nothing. The server's package is found from the server command itself (its console script
names the module it runs), not hard-coded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from extensibility.errors import RequestConflict
from extensibility.image import Image, canonical_name
from extensibility.requirements import RequirementsSpec

if TYPE_CHECKING:  # importlib.metadata costs milliseconds the warm path does not spend
    from importlib import metadata


@dataclass(frozen=True)
class Held:
    name: str
    version: str
    needed_by: tuple[str, ...]  # "azureml-inference-server-http 1.5.1 requires flask~=3.1.0"

    def why(self) -> str:
        return "; ".join(self.needed_by) or "it is part of the image"


@dataclass(frozen=True)
class Protection:
    mode: str
    module: str | None  # the server's module, from its console script
    server: str | None  # the distribution that provides it
    held: Mapping[str, Held] = field(default_factory=dict)

    def describe(self) -> str:
        if self.mode == "off":
            return "off: nothing held"
        if self.mode == "image":
            return f"image: {len(self.held)} image packages held at their versions"
        if self.server is None:
            return "server: the server command is not a Python console script of the image; " \
                   "nothing held"
        return f"server: {len(self.held)} packages of {self.server}'s closure held"

    def constraint_lines(self) -> list[str]:
        return [f"{h.name}=={h.version}" for h in sorted(self.held.values(), key=lambda h: h.name)]


def resolve_protection(mode: str, module: str | None, image: Image) -> Protection:
    """Work out what is held (cold path: reads the image's package metadata)."""
    if mode == "off":
        return Protection(mode, module, None)
    dists = _image_distributions(image)
    if mode == "image":
        held = {name: Held(name, dist.version, ()) for name, dist in dists.items()}
        return Protection(mode, module, None, held)
    server = _providing_distribution(module, dists) if module else None
    if server is None:
        return Protection(mode, module, None)
    return Protection(mode, module, server, _closure(server, dists))


def check_request(protection: Protection, spec: RequirementsSpec) -> None:
    """A user's line that cannot be met with a held version fails before any install."""
    from packaging.requirements import Requirement as Pep508Requirement

    for requirement in spec.requirements + spec.constraints:
        held = protection.held.get(requirement.name or "")
        if held is None or requirement.install_text.startswith(("/", "-")):
            continue
        try:
            parsed = Pep508Requirement(requirement.install_text)
        except ValueError:
            continue
        if parsed.url or (parsed.marker and not parsed.marker.evaluate()):
            continue
        if not parsed.specifier.contains(held.version, prereleases=True):
            raise conflict(protection, requirement.origin.__str__(), requirement.origin.text,
                           [held])


def conflict(protection: Protection, where: str, text: str, held: Iterable[Held],
             detail: str = "") -> RequestConflict:
    lines = [f"{where}: {text!r} conflicts with packages held for the scoring server "
             f"(EXTENSIBILITY_PROTECT={protection.mode}):"]
    lines += [f"  {h.name}=={h.version} is held: {h.why()}" for h in held]
    if detail:
        lines.append(detail)
    return RequestConflict(
        "\n".join(lines),
        fix="drop or relax the pin so the held version satisfies it; or, at your own risk, "
        "set EXTENSIBILITY_PROTECT=off (every override is then reported as a warning)",
    )


def _image_distributions(image: Image) -> dict[str, metadata.Distribution]:
    from importlib import metadata

    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=list(image.site_dirs)):
        name = canonical_name(dist.metadata["Name"] or "")
        found.setdefault(name, dist)  # first on the path wins, as at import time
    return found


def _providing_distribution(module: str, dists: Mapping[str, metadata.Distribution]) -> str | None:
    top = module.split(".")[0]
    for name, dist in dists.items():
        top_level = dist.read_text("top_level.txt")
        if top_level and top in top_level.split():
            return name
        for file in dist.files or ():
            parts = Path(str(file)).parts
            if parts and (parts[0] == top or parts[0] == f"{top}.py"):
                return name
    return None


def _closure(root: str, dists: Mapping[str, metadata.Distribution]) -> dict[str, Held]:
    """Installed requirements of `root`, transitively, with who needs each."""
    from packaging.requirements import Requirement as Pep508Requirement

    needed_by: dict[str, list[str]] = {root: []}
    seen = {root}
    queue = [root]
    while queue:
        name = queue.pop()
        dist = dists[name]
        for text in dist.requires or ():
            requirement = Pep508Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonical_name(requirement.name)
            if dependency not in dists:
                continue
            spec = str(requirement.specifier) or "(any version)"
            needed_by.setdefault(dependency, []).append(
                f"{name} {dist.version} requires {dependency}{spec}")
            if dependency not in seen:
                seen.add(dependency)
                queue.append(dependency)
    return {name: Held(name, dists[name].version, tuple(reasons))
            for name, reasons in needed_by.items()}
