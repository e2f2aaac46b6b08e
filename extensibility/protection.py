"""Keep the user's packages from breaking the scoring server.

Modes (EXTENSIBILITY_PROTECT):
- `server` (default) holds what the server *needs*: the server's package at its installed
  version, and each package of its dependency closure to the ranges the installed
  requirers declare in their metadata (`psutil>=5.9,<8`), transitively. A pin inside those
  ranges is the user's choice and is installed. A request line for the server's package
  that the image's version does not satisfy (`==1.4.1`, `<1.5`, a URL) is a deliberate
  choice too: it is honoured (installed into the overlay, shown as an override) and nothing
  of the image's closure is held; that version's own requirements are the resolver's to
  meet, the build check covers what the new server and the request need, and the server
  must boot. A line the image's version satisfies (an unpinned mention, as MLflow writes)
  replaces nothing: the server stays held.
- `image` holds every image package at its installed version;
- `off` holds nothing (conflicts become warnings; a server that cannot boot still fails).

The server's package is found from the server command itself (its console script names the
module it runs), not hard-coded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from extensibility.errors import RequestConflict
from extensibility.image import Image, canonical_name
from extensibility.requirements import Requirement, RequirementsSpec
from extensibility.settings import ProtectMode

if TYPE_CHECKING:  # importlib.metadata costs milliseconds the warm path does not spend
    from importlib import metadata


@dataclass(frozen=True)
class Need:
    """One requirer's requirement on a held package: `who` requires `specifier` of it."""

    who: str  # "azureml-inference-server-http 1.5.1"
    specifier: str  # ">=5.9,<8", "" for any version

    def admits(self, version: str) -> bool:
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.specifier).contains(version, prereleases=True)

    def describe(self, name: str) -> str:
        return f"{self.who} requires {name}{self.specifier or ' (any version)'}"


@dataclass(frozen=True)
class Held:
    name: str
    version: str  # as installed in the image
    needs: tuple[Need, ...] = ()  # empty: held at its version (the server, `image` mode)
    reason: str = "it is part of the image"  # why an exact hold is exact

    @property
    def exact(self) -> bool:
        return not self.needs

    def constraint(self) -> str | None:
        """The installer constraint: the exact version, or the declared ranges together."""
        if self.exact:
            return f"{self.name}=={self.version}"
        specifiers = sorted({part for need in self.needs for part in need.specifier.split(",")
                             if part})
        return f"{self.name}{','.join(specifiers)}" if specifiers else None

    def refusing(self, version: str) -> list[str]:
        """Why `version` cannot be installed: the requirements it breaks (empty: it may)."""
        if self.exact:
            return [] if version == self.version else \
                [f"{self.name}=={self.version} is held: {self.reason}"]
        return [need.describe(self.name) for need in self.needs if not need.admits(version)]

    def why(self) -> str:
        return "; ".join(need.describe(self.name) for need in self.needs) or self.reason


@dataclass(frozen=True)
class Protection:
    mode: ProtectMode
    module: str | None  # the server's module, from its console script
    server: str | None  # the distribution that provides it
    held: Mapping[str, Held] = field(default_factory=dict)
    # the request pins the server's package itself: (image version, the user's line)
    override: tuple[str, Requirement] | None = None

    def describe(self) -> str:
        if self.mode == ProtectMode.OFF:
            return "off: nothing held"
        if self.mode == ProtectMode.IMAGE:
            return f"image: {len(self.held)} image packages held at their versions"
        if self.override is not None:
            version, line = self.override
            return (f"server: {self.server} {version} is replaced as the request asks "
                    f"({line.origin}: {line.origin.text}); its own requirements are met by "
                    "the installer and checked after the install")
        if self.server is None:
            return "server: the server command is not a Python console script of the image; " \
                   "nothing held"
        return f"server: {self.server} at its version, {len(self.held) - 1} packages of its " \
               "closure held to the ranges it declares"

    def constraint_lines(self, pinned_by: RequirementsSpec | None = None) -> list[str]:
        """The installer's constraints. `pinned_by`: a request in hash-checking mode, where
        uv takes only `==` constraints: each held range becomes the version the request pins
        inside it (checked by `check_request`), else the image's. Nothing changes: in that
        mode a package the request does not pin cannot be installed anyway."""
        pins = {r.name: v for r in pinned_by.requirements if r.name
                and (v := _pinned_version(r)) is not None} if pinned_by else {}
        lines = (f"{h.name}=={pins.get(h.name, h.version)}" if pinned_by else h.constraint()
                 for h in sorted(self.held.values(), key=lambda h: h.name))
        return [line for line in lines if line]


def resolve_protection(mode: ProtectMode, module: str | None, image: Image,
                       requested: Iterable[Requirement] = ()) -> Protection:
    """Work out what is held for a request (cold path: reads the image's package metadata)."""
    if mode == ProtectMode.OFF:
        return Protection(mode, module, None)
    dists = _image_distributions(image)
    if mode == ProtectMode.IMAGE:
        held = {name: Held(name, dist.version) for name, dist in dists.items()}
        return Protection(mode, module, None, held)
    server = _providing_distribution(module, dists) if module else None
    if server is None:
        return Protection(mode, module, None)
    version = dists[server].version
    for requirement in requested:
        if requirement.name == server and not _satisfied_by(requirement, version):
            return Protection(mode, module, server, override=(version, requirement))
    return Protection(mode, module, server, _closure(server, dists))


def _satisfied_by(requirement: Requirement, version: str) -> bool:
    """Whether the image's `version` meets the line (`name`, `name>=1.4`, `name[extra]`; a
    marker false here asks for nothing): then the server stays held like any other line.
    A URL, a local path or a version outside the line's range replaces it."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Pep508Requirement

    if requirement.local is not None or requirement.editable:
        return False
    try:
        parsed = Pep508Requirement(requirement.install_text)
    except InvalidRequirement:
        return False
    if parsed.marker is not None and not parsed.marker.evaluate():
        return True
    return parsed.url is None and parsed.specifier.contains(version, prereleases=True)


def check_request(protection: Protection, spec: RequirementsSpec) -> None:
    """Every line of the request pinned outside what is held fails before any install, all
    of them in one message, each with the requirements it breaks."""
    conflicts = []
    for requirement in spec.requirements + spec.constraints:
        held = protection.held.get(requirement.name or "")
        version = _pinned_version(requirement) if held else None
        if held is None or version is None:
            continue  # a range is the installer's to meet against the held constraints
        reasons = held.refusing(version)
        if reasons:
            conflicts.append((requirement, held, reasons))
    if conflicts:
        raise conflict_error(protection, [
            (str(r.origin), r.origin.text, reasons) for r, _, reasons in conflicts])


def conflict_error(protection: Protection,
                   conflicts: Sequence[tuple[str, str, Sequence[str]]],
                   detail: str = "") -> RequestConflict:
    """One error for every (where, line, reasons) conflict found."""
    lines = [f"{len(conflicts)} line{'s' if len(conflicts) > 1 else ''} of the request "
             f"conflict{'' if len(conflicts) > 1 else 's'} with what the scoring server needs "
             f"(EXTENSIBILITY_PROTECT={protection.mode}):"]
    for where, text, reasons in conflicts:
        lines.append(f"  {where}: {text!r}")
        lines += [f"    {reason}" for reason in reasons]
    if detail:
        lines.append(detail)
    return RequestConflict(
        "\n".join(lines),
        fix="pin versions inside the ranges shown (or drop the pins); or, at your own risk, "
        "set EXTENSIBILITY_PROTECT=off (conflicts are then warnings, but a server that cannot "
        "start still fails the build)")


def _pinned_version(requirement: Requirement) -> str | None:
    """The version a `name==V` line (marker true) or a lock's entry asks for; None for
    anything else."""
    if requirement.version is not None:
        return requirement.version
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Pep508Requirement

    if requirement.install_text.startswith(("/", "-")):
        return None
    try:
        parsed = Pep508Requirement(requirement.install_text)
    except InvalidRequirement:
        return None
    if parsed.url or (parsed.marker and not parsed.marker.evaluate()):
        return None
    specifiers = list(parsed.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "===") and \
            "*" not in specifiers[0].version:
        return specifiers[0].version
    return None


def _image_distributions(image: Image) -> dict[str, metadata.Distribution]:
    from importlib import metadata

    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=list(image.site_dirs)):
        name = canonical_name((dist.metadata.get_all("Name") or [""])[0])
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
    """The server at its version; each installed dependency, transitively, with what every
    installed requirer declares about it."""
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Pep508Requirement

    needs: dict[str, list[Need]] = {}
    seen = {root}
    queue = [root]
    while queue:
        name = queue.pop()
        dist = dists[name]
        for text in dist.requires or ():
            try:
                requirement = Pep508Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonical_name(requirement.name)
            if dependency not in dists or dependency == root:
                continue
            needs.setdefault(dependency, []).append(
                Need(f"{name} {dist.version}", str(requirement.specifier)))
            if dependency not in seen:
                seen.add(dependency)
                queue.append(dependency)
    held = {root: Held(root, dists[root].version, reason="it is the scoring server (pin it "
                       "yourself to choose another version)")}
    held.update({name: Held(name, dists[name].version, tuple(found))
                 for name, found in needs.items()})
    return held
