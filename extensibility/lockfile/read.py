"""A PEP 751 lock file as a request: read and validated with `packaging.pylock`, the packages
for this interpreter selected by the lock's markers, each file pinned by its hashes.

Nothing is resolved: the request is the selection, installed as it is (`exact`: no
dependencies, no dry run). What the image already has at the locked version is left to the
image (an overlay adds, it does not copy); everything else goes into the overlay.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extensibility.errors import RequestInvalid, RequestNotSupported
from extensibility.fingerprint import fingerprint_path, sha256_bytes
from extensibility.redact import redact_url
from extensibility.requirements import IndexOptions, Origin, Requirement, RequirementsSpec

if TYPE_CHECKING:
    from packaging.pylock import Package, Pylock, PylockValidationError

# the hash algorithms both installers verify (`--hash=ALGO:HEX`), strongest first
HASH_ALGORITHMS = ("sha512", "sha384", "sha256")
NEEDS = "packaging >= 26 (Python 3.10+; and tomli on Python 3.10)"
FIX_MISSING = ("install the `lock` extra into the image's Python: pip install "
               "'inference-extensibility[lock]' (it brings packaging>=26, and tomli before "
               "Python 3.11); or give a requirements.txt instead")
_PACKAGES_HEADER_RE = re.compile(r"^\s*\[\[\s*packages\s*\]\]")
_MAX_SHOWN = 200


@dataclass(frozen=True)
class Locked:
    """One selected package: `name==version` and the file that installs it."""

    name: str
    version: str | None
    file: str  # the file's name, or the archive's URL/path (redacted)
    digest: str  # the strongest hash, `ALGO:HEX`
    in_image: bool  # the image has this version: nothing to install

    def describe(self) -> str:
        pin = f"{self.name}=={self.version}" if self.version else self.name
        return pin + (" (the image's)" if self.in_image else "")


@dataclass(frozen=True)
class LockSelection:
    """What a lock file selects for this interpreter (shown by `plan`, part of the key)."""

    path: Path
    sha256: str
    created_by: str
    packages: tuple[Locked, ...]

    def key_part(self) -> dict[str, Any]:
        """The key's request: the lock's content (its digest), and readable, what it
        selects here."""
        return {"lock": {"sha256": self.sha256, "created_by": self.created_by,
                         "selected": [f"{p.describe()} {p.file} {p.digest}"
                                      for p in self.packages]}}

    def describe(self) -> list[str]:
        added = [p for p in self.packages if not p.in_image]
        lines = [f"{self.path.name} (created by {self.created_by}): {len(self.packages)} "
                 f"packages selected for this interpreter, {len(added)} to install, "
                 f"{len(self.packages) - len(added)} already in the image"]
        lines += [f"  {p.describe()}  {p.file}" for p in self.packages]
        return lines


def read_lock(path: Path, data: bytes, image: Mapping[str, str],
              wheelhouse: Path | None = None) -> tuple[RequirementsSpec, LockSelection]:
    """The request a lock file makes here: `image` maps the image's packages to their versions;
    `wheelhouse` (offline mode): the lock's files are taken from that folder, by name."""
    pylock = load(path, data)
    selected = _select(path, pylock)
    lines = _package_lines(data)
    if len(lines) != len(pylock.packages):
        lines = []  # written inline (`packages = [...]`): cited by number only
    index_of = {id(package): number for number, package in enumerate(pylock.packages)}
    requirements: list[Requirement] = []
    locked: list[Locked] = []
    for package, source in selected:
        number = index_of[id(package)]
        where = Origin(path, lines[number] if lines else 0,
                       f"packages[{number}] {package.name}"
                       + (f"=={package.version}" if package.version else ""))
        requirement, entry = _entry(where, package, source, image, wheelhouse)
        locked.append(entry)
        if requirement is not None:
            requirements.append(requirement)
    spec = RequirementsSpec(
        requirements=tuple(requirements), constraints=(),
        # hash-checking mode in both installers: every file is verified before it is installed
        options=IndexOptions(require_hashes=True),
        files=(path,), digests={str(path): sha256_bytes(data)},
        local_files={r.local[0]: r.local[1] for r in requirements if r.local},
        exact=True)
    return spec, LockSelection(path, sha256_bytes(data), pylock.created_by, tuple(locked))


def load(path: Path, data: bytes) -> Pylock:
    """Parse and validate; every failure names the file (and the field)."""
    Pylock, PylockValidationError = _pylock()
    toml = toml_module()
    try:
        document = toml.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RequestInvalid(f"{path}: not UTF-8 text ({exc.reason})",
                             fix="save the lock file as UTF-8") from None
    except toml.TOMLDecodeError as exc:  # its message gives the line and column, no content
        raise RequestInvalid(f"{path}: not a valid TOML file ({exc})",
                             fix="regenerate the lock (uv pip compile --format pylock.toml, "
                             "pip lock, or extensibility lock)") from None
    try:
        return Pylock.from_dict(document)
    except PylockValidationError as exc:
        field = f" (field {exc.context})" if exc.context else ""
        raise RequestInvalid(f"{path}: not a valid PEP 751 lock file{field}: "
                             f"{_shown(exc.message)}",
                             fix="correct the field named, or regenerate the lock") from None


def _pylock() -> tuple[type[Pylock], type[PylockValidationError]]:
    try:
        from packaging.pylock import Pylock, PylockValidationError
    except ImportError:  # packaging < 26, or Python 3.9 (packaging 26 needs 3.10)
        raise RequestNotSupported(
            f"reading a PEP 751 lock file needs {NEEDS} in the image's Python; this one has "
            f"packaging {_packaging_version()}", fix=FIX_MISSING) from None
    return Pylock, PylockValidationError


def toml_module() -> Any:
    """tomllib (Python 3.11+), else tomli."""
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise RequestNotSupported(f"reading a PEP 751 lock file needs {NEEDS}: no TOML parser "
                              "(tomli) in the image's Python", fix=FIX_MISSING)


def _packaging_version() -> str:
    try:
        import packaging
    except ImportError:
        return "(none)"
    return str(getattr(packaging, "__version__", "(unknown)"))


def _select(path: Path, pylock: Pylock) -> list[tuple[Package, Any]]:
    """The lock's own selection for this interpreter; a lock for another one is refused with
    what it asks for and what this interpreter is."""
    from packaging.markers import default_environment
    from packaging.pylock import PylockSelectError, PylockValidationError

    try:
        return list(pylock.select())
    except (PylockSelectError, PylockValidationError) as exc:
        environment = default_environment()
        here = ", ".join(f"{name} {environment[name]!r}" for name in
                         ("python_full_version", "implementation_name", "sys_platform",
                          "platform_machine"))
        asked = [f"environments: {' or '.join(str(m) for m in pylock.environments)}"
                 ] if pylock.environments else []
        if pylock.requires_python:
            asked.append(f"requires-python: {pylock.requires_python}")
        raise RequestNotSupported(
            f"{path} was not locked for this interpreter: {_shown(str(exc))}"
            + (f"; the lock's markers: {'; '.join(asked)}" if asked else "")
            + f"; this interpreter: {here}",
            fix="lock the request for this image's Python (`extensibility lock` inside the "
            "image, or uv pip compile --format pylock.toml --python-version X.Y "
            "--python-platform PLATFORM)") from None


def _entry(where: Origin, package: Package, source: Any, image: Mapping[str, str],
           wheelhouse: Path | None) -> tuple[Requirement | None, Locked]:
    """The installer's line for one selected package (None: the image has it already)."""
    from packaging.pylock import PackageArchive, PackageDirectory, PackageVcs
    from packaging.version import InvalidVersion, Version

    name, version = str(package.name), package.version
    if isinstance(source, (PackageVcs, PackageDirectory)):
        kind = "a VCS checkout" if isinstance(source, PackageVcs) else "a local folder"
        raise RequestNotSupported(f"{where}: {name} comes from {kind}, which no hash can "
                                  "verify", fix="lock a built wheel (or an archive with its "
                                  "hashes) for it instead")
    hashes = [f"{algorithm}:{source.hashes[algorithm]}" for algorithm in HASH_ALGORITHMS
              if isinstance(source.hashes.get(algorithm), str)]
    if not hashes:
        raise RequestNotSupported(f"{where}: {name} has no sha256, sha384 or sha512 hash "
                                  f"(it has {', '.join(sorted(source.hashes))})",
                                  fix="regenerate the lock with sha256 hashes")
    direct = isinstance(source, PackageArchive)
    shown = redact_url(source.url or source.path or "")
    filename = shown if direct else source.filename
    installed = image.get(name)
    in_image = False
    if version is not None and installed is not None and not direct:
        try:
            in_image = Version(installed) == version
        except InvalidVersion:
            in_image = False
    entry = Locked(name, str(version) if version else None, filename, hashes[0], in_image)
    if in_image:
        return None, entry
    location, local = _location(where, name, source, filename, hashes, wheelhouse, direct)
    pinned = str(version) if version is not None else None
    key = f"{name}=={pinned}" if pinned and not direct else f"{name} @ {shown}"
    requirement = Requirement(install_text=f"{name} @ {location}", key_text=key, name=name,
                              origin=where, hashes=tuple(hashes), local=local, version=pinned)
    return requirement, entry


def _location(where: Origin, name: str, source: Any, filename: str, hashes: list[str],
              wheelhouse: Path | None, direct: bool) -> tuple[str, tuple[str, str] | None]:
    """The URL the installer fetches, and for a file on this machine (path, fingerprint),
    its hash checked here first, so a wrong file is named before anything is installed."""
    path: Path | None = None
    if source.path:
        path = Path(source.path)
        if not path.is_absolute():  # PEP 751: relative to the lock file's folder
            path = where.path.parent / path
    elif wheelhouse is not None and not direct and (wheelhouse / filename).is_file():
        path = wheelhouse / filename  # offline: the same file, by name, from the wheelhouse
    elif wheelhouse is not None:
        raise RequestInvalid(f"{where}: the wheelhouse {wheelhouse} has no {filename} for "
                             f"{name} (offline mode fetches nothing)",
                             fix=f"add {filename} to the wheelhouse")
    if path is None:
        return str(source.url), None
    if not path.is_file():
        raise RequestInvalid(f"{where}: {name}'s file {path} does not exist",
                             fix="put the file there (paths in a lock are relative to its "
                             "folder), or lock it by URL")
    algorithm, expected = hashes[0].split(":", 1)
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        raise RequestInvalid(f"{where}: {path} does not match the lock's {algorithm} hash "
                             f"for {name}", fix="the file was changed or replaced: put the "
                             "locked file back, or regenerate the lock")
    absolute = str(path.absolute())
    return path.absolute().as_uri(), (absolute, fingerprint_path(path))


def _package_lines(data: bytes) -> list[int]:
    """The line of each `[[packages]]` table, in order."""
    text = data.decode("utf-8", errors="replace")
    return [number for number, line in enumerate(text.splitlines(), start=1)
            if _PACKAGES_HEADER_RE.match(line)]


def _shown(message: str) -> str:
    """A validator's message as an error shows it: redacted, one line, bounded."""
    text = redact_url(" ".join(message.split()))
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 3] + "..."
