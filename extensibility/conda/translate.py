"""Decide how a conda file is met, and translate what can go into the overlay.

"overlay": the Python pin matches the image's interpreter (same major.minor) and every conda
dependency is python/pip, part of the Python runtime the image already has, or a Python
package installable from the package index (under its PyPI name). Its requirements then take
exactly the path of a requirements file.
"prefix": anything else (another Python, a native-only package, a build string, a version
spec PEP 440 cannot express) needs a real conda prefix (prefix.py).
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

from extensibility.conda.file import CondaFile, MatchSpec
from extensibility.conda.names import pypi_name

# parts of a conda Python runtime: the image's interpreter already brings its own
RUNTIME_PACKAGES = frozenset({
    "_libgcc_mutex", "_openmp_mutex", "ca-certificates", "openssl", "libgcc", "libgcc-ng",
    "libstdcxx", "libstdcxx-ng", "libgomp", "ld_impl_linux-64", "libffi", "libzlib", "zlib",
    "ncurses", "readline", "sqlite", "libsqlite", "tk", "tzdata", "xz", "liblzma", "bzip2",
    "libuuid", "libnsl", "libxcrypt", "libexpat", "expat", "libmpdec", "python_abi", "libedit",
})

# conda packages with no Python package of that name: native libraries and programs
NATIVE_PACKAGES = frozenset({
    "cudatoolkit", "cuda-toolkit", "cuda-runtime", "cuda-nvcc", "cudnn", "nccl", "pytorch-cuda",
    "mkl", "mkl-include", "intel-openmp", "openblas", "libopenblas", "blas", "libblas",
    "libcblas", "liblapack", "ffmpeg", "graphviz", "git", "nodejs", "openjdk", "r-base",
    "gcc", "gxx", "gfortran", "gcc_linux-64", "gxx_linux-64", "make", "curl", "libcurl",
    "poppler", "tesseract", "libxgboost", "libprotobuf", "libjpeg-turbo", "jpeg", "libpng",
    "freetype", "hdf5", "gdal", "libgdal", "proj", "geos", "cairo", "pango", "libiconv",
    "unixodbc", "libopencv", "sox", "imagemagick", "pandoc", "libsndfile", "portaudio",
})

OVERLAY = "overlay"
PREFIX = "prefix"


@dataclass(frozen=True)
class Translated:
    """One conda dependency as a PEP 508 requirement for the overlay."""

    spec: MatchSpec
    requirement: str  # e.g. "numpy==1.26.*"
    note: str | None = None  # e.g. "pytorch is torch on PyPI"


@dataclass(frozen=True)
class Decision:
    strategy: str  # OVERLAY or PREFIX
    reasons: tuple[str, ...]  # why a prefix is needed (empty for a faithful overlay)
    translated: tuple[Translated, ...]
    skipped: tuple[str, ...]  # dependencies the overlay leaves to the image, and why
    python: MatchSpec | None
    python_problem: str | None = None  # the pin the image's interpreter cannot stand for
    untranslatable: tuple[MatchSpec, ...] = ()  # what only a conda prefix can provide
    python_note: str | None = None  # how the image's Python stands for the pin
    unknown: tuple[MatchSpec, ...] = ()  # names not known to be PyPI packages


def decide(conda: CondaFile, python_version: str, asked: str,
           native: frozenset[str] = frozenset(), image: Container[str] = ()) -> Decision:
    """`asked`: EXTENSIBILITY_CONDA_STRATEGY (auto, overlay, prefix); `native`: names known
    to be native from the channels (besides the built-in table); `image`: the image's
    distribution names (known PyPI names)."""
    reasons: list[str] = []
    translated: list[Translated] = []
    skipped: list[str] = []
    untranslatable: list[MatchSpec] = []
    unknown: list[MatchSpec] = []
    python = None
    python_problem = None
    for spec in conda.dependencies:
        if spec.name == "python":
            python = spec
            python_problem = python_mismatch(spec, python_version)
            if python_problem:
                reasons.append(python_problem)
            continue
        if spec.name == "pip":
            skipped.append(f"{spec.origin.text} (the pip of the image installs the pip: "
                           "section)")
            continue
        if spec.name in RUNTIME_PACKAGES:
            skipped.append(f"{spec.origin.text} (part of the Python runtime the image has)")
            continue
        problem = _not_translatable(spec, native)
        if problem is None and pypi_name(spec.name, image) is None:
            problem = (f"{spec.origin}: {spec.origin.text!r}: {spec.name} is not known to be "
                       "a package on PyPI (a name there can be another project)")
            unknown.append(spec)
            if asked == OVERLAY:
                continue  # refused by the request reader, with the ways out
        if problem and asked == OVERLAY:
            skipped.append(f"{problem} (not installed: EXTENSIBILITY_CONDA_STRATEGY=overlay)")
        elif problem:
            reasons.append(problem)
            untranslatable.append(spec)
        else:
            translated.append(_translate(spec, image))
    if asked == PREFIX:
        reasons.insert(0, "EXTENSIBILITY_CONDA_STRATEGY=prefix asks for a conda prefix")
    strategy = PREFIX if reasons and asked != OVERLAY else OVERLAY
    python_note = (f"{python.origin.text} (the image's Python {python_version} stands for it)"
                   if python is not None and not python_problem else None)
    return Decision(strategy, tuple(reasons), tuple(translated), tuple(skipped), python,
                    python_problem, tuple(untranslatable), python_note, tuple(unknown))


def python_mismatch(spec: MatchSpec, running: str) -> str | None:
    """None when the running interpreter can stand for the pin (same major.minor)."""
    if spec.build:
        return f"{spec.origin}: {spec.origin.text!r} pins a conda build of Python"
    if not spec.version or spec.version == "*":
        return None
    specifier = pep440_specifier(spec.version)
    if specifier is not None:
        from packaging.specifiers import SpecifierSet

        if SpecifierSet(specifier).contains(running, prereleases=True):
            return None
    asked_minor = _minor(spec.version.lstrip("=<>!~").rstrip(".*"))
    if asked_minor is not None and asked_minor == _minor(running) and "," not in spec.version \
            and not spec.version.startswith(("<", ">", "!")):
        return None  # python=3.11.5 on a 3.11.7 image: same minor, ABI-compatible
    return (f"{spec.origin}: {spec.origin.text!r} asks for another Python than the image's "
            f"{running}")


def _minor(version: str) -> tuple[str, str] | None:
    parts = version.split(".")
    return (parts[0], parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def is_native(spec: MatchSpec, native: frozenset[str] = frozenset()) -> bool:
    """A package with no Python package equivalent (it goes beside, not into, a Python)."""
    return spec.name in NATIVE_PACKAGES or spec.name in native or \
        spec.name.startswith(("r-", "_"))


def _not_translatable(spec: MatchSpec, native: frozenset[str]) -> str | None:
    where = f"{spec.origin}: {spec.origin.text!r}"
    if is_native(spec, native):
        return f"{where} is a native conda package with no Python package equivalent"
    if spec.build and spec.build != "*":
        return f"{where} pins a conda build string, which a Python package cannot honour"
    if spec.version and pep440_specifier(spec.version) is None:
        return f"{where} has a version constraint that PEP 440 cannot express"
    return None


def _translate(spec: MatchSpec, image: Container[str]) -> Translated:
    pypi = pypi_name(spec.name, image) or spec.name
    specifier = pep440_specifier(spec.version) if spec.version else ""
    note = f"{spec.name} is {pypi} on PyPI" if pypi != spec.name else None
    if spec.channel:
        channel = f"channel {spec.channel} is not used: the package comes from the index"
        note = f"{note}; {channel}" if note else channel
    return Translated(spec, f"{pypi}{specifier or ''}", note)


def pep440_specifier(version: str) -> str | None:
    """A conda version spec as a PEP 440 specifier ('' = any), or None when it has no
    equivalent (alternatives with `|`, versions PEP 440 does not accept)."""
    if "|" in version:
        return None
    clauses: list[str] = []
    for clause in (c.strip() for c in version.split(",")):
        converted = _clause(clause)
        if converted is None:
            return None
        if converted:
            clauses.append(converted)
    return ",".join(clauses)


def _clause(clause: str) -> str | None:
    from packaging.specifiers import InvalidSpecifier, Specifier

    if clause in ("*", ""):
        return ""
    operator = next((op for op in ("==", "!=", ">=", "<=", "~=", ">", "<", "=")
                     if clause.startswith(op)), "")
    value = clause[len(operator):].strip()
    if operator == "=" or value.endswith("*"):
        # `=1.2`, `1.2.*`, `1.2*` all mean "1.2 or any 1.2.x"
        base = value.rstrip("*").rstrip(".")
        if operator not in ("", "=", "==", "!="):
            return None
        text = f"{'!=' if operator == '!=' else '=='}{base}.*"
    else:
        text = f"{operator or '=='}{value}"  # a bare version is exact in conda
    try:
        Specifier(text)
    except InvalidSpecifier:
        return None
    return text


def explain(decision: Decision, *, image_python: bool = True) -> Sequence[str]:
    """Lines for `plan` and the start log. `image_python`: the image's interpreter is used
    (else the conda prefix brings Python and every conda dependency)."""
    lines = [f"strategy {decision.strategy}: " + (
        "; ".join(decision.reasons) if decision.reasons
        else "the file can be met faithfully by the image's Python plus PyPI packages")]
    if not image_python:
        return lines
    if decision.python_note:
        lines.append(f"kept {decision.python_note}")
    for item in decision.translated:
        lines.append(f"{item.spec.origin.text} -> {item.requirement}"
                     + (f" ({item.note})" if item.note else ""))
    lines += [f"skipped {item}" for item in decision.skipped]
    return lines
