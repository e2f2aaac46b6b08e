"""Conda match specs and their PEP 440 translation (pure logic, no installs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from extensibility.conda.file import CondaFile, parse_match_spec, parse_match_spec_here
from extensibility.conda.translate import OVERLAY, PREFIX, decide, pep440_specifier
from extensibility.errors import RequestInvalid
from extensibility.requirements import Origin

PARSERS = {"py-rattler": parse_match_spec, "ours": parse_match_spec_here}


def spec(text: str, parser: str = "py-rattler") -> tuple[str, str | None, str | None, str | None]:
    """(name, version as PEP 440, build, channel): the two parsers normalise conda versions
    differently (`1.2|1.3` or `==1.2|==1.3`), so they are compared by what they mean."""
    parsed = PARSERS[parser](Origin(Path("env.yml"), 3, text))
    version = pep440_specifier(parsed.version) if parsed.version else None
    if parsed.version and version is None:
        version = "(not PEP 440)"
    return parsed.name, version, parsed.build, parsed.channel


# every form conda environment files use (conda's MatchSpec grammar)
FORMS = [
    ("numpy", ("numpy", None, None, None)),
    ("numpy=1.26", ("numpy", "==1.26.*", None, None)),
    ("numpy=1.26.*", ("numpy", "==1.26.*", None, None)),
    ("numpy==1.26.4", ("numpy", "==1.26.4", None, None)),
    ("numpy 1.26.4", ("numpy", "==1.26.4", None, None)),
    ("numpy>=1,<2", ("numpy", ">=1,<2", None, None)),
    ("numpy >= 1.21", ("numpy", ">=1.21", None, None)),
    ("numpy >=1.21, <2", ("numpy", ">=1.21,<2", None, None)),
    ("numpy=1.26.4=py311h64a7726_0", ("numpy", "==1.26.4", "py311h64a7726_0", None)),
    ("numpy 1.26.* py311*", ("numpy", "==1.26.*", "py311*", None)),
    ("conda-forge::Scikit-Learn>=1.3", ("scikit-learn", ">=1.3", None, "conda-forge")),
    ("numpy[version='>=1.20',build=py311*]", ("numpy", ">=1.20", "py311*", None)),
    ("numpy[version='>=1.21,<2']", ("numpy", ">=1.21,<2", None, None)),
    ("numpy[channel=conda-forge, version='>=1.21']", ("numpy", ">=1.21", None, "conda-forge")),
    ("numpy 1.2|1.3", ("numpy", "(not PEP 440)", None, None)),
]


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize(("text", "expected"), FORMS)
def test_match_specs(text: str, expected: tuple[str, str | None, str | None, str | None],
                     parser: str) -> None:
    assert spec(text, parser) == expected


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("text", ["::numpy", "=1.2", "numpy=", "numpy>=one", "numpy[color=red]"])
def test_malformed_match_specs_cite_the_line(text: str, parser: str) -> None:
    with pytest.raises(RequestInvalid, match=r"env.yml:3: not a conda match spec"):
        spec(text, parser)


@pytest.mark.parametrize(("conda", "pep440"), [
    ("1.26.*", "==1.26.*"), ("1.26*", "==1.26.*"), ("==1.26.4", "==1.26.4"),
    ("1.26.4", "==1.26.4"), (">=1,<2", ">=1,<2"), ("*", ""), ("!=1.2.*", "!=1.2.*"),
    (">=1.0|<0.5", None), ("1.2_1", None),
])
def test_conda_versions_in_pep_440(conda: str, pep440: str | None) -> None:
    assert pep440_specifier(conda) == pep440


def conda_file(*dependencies: str) -> CondaFile:
    return CondaFile(Path("env.yml"), None, (), tuple(
        parse_match_spec(Origin(Path("env.yml"), n, d)) for n, d in enumerate(dependencies, 2)),
        ())


def test_overlay_when_faithful_prefix_otherwise() -> None:
    faithful = decide(conda_file("python=3.11.2", "pip", "pytorch=2.1", "openssl"), "3.11.7",
                      "auto")
    assert faithful.strategy == OVERLAY and not faithful.reasons
    assert [t.requirement for t in faithful.translated] == ["torch==2.1.*"]

    other_python = decide(conda_file("python=3.10", "numpy"), "3.11.7", "auto")
    assert other_python.strategy == PREFIX and other_python.python_problem

    native = decide(conda_file("python>=3.9", "ffmpeg", "numpy"), "3.11.7", "auto")
    assert native.strategy == PREFIX and [s.name for s in native.untranslatable] == ["ffmpeg"]

    forced = decide(conda_file("ffmpeg", "numpy"), "3.11.7", "overlay")
    assert forced.strategy == OVERLAY and any("ffmpeg" in s for s in forced.skipped)

    channel_native = decide(conda_file("hello-native"), "3.11.7", "auto",
                            frozenset({"hello-native"}))
    assert channel_native.strategy == PREFIX


@pytest.mark.parametrize(("dependency", "layout"), [
    ("numpy=1.26", None),  # translated: the overlay
    ("ffmpeg", "native"),  # native: a prefix beside the image's Python
    ("numpy=1.26.4=py311h64a7726_0", "python"),  # a conda build of a Python package
])
def test_layout_follows_what_only_conda_can_provide(dependency: str, layout: str | None,
                                                    tmp_path: Path) -> None:
    import sys

    from extensibility.conda.request import read_conda_request
    from extensibility.settings import Settings

    path = tmp_path / "conda.yaml"
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    path.write_text(f"dependencies:\n  - python={minor}\n  - {dependency}\n")
    conda, _ = read_conda_request(
        Settings.from_environ({"EXTENSIBILITY_CACHE_DIR": str(tmp_path)}), path,
        path.read_bytes(), {})
    assert conda.layout == layout


def test_defaults_and_nodefaults_are_read_as_conda_reads_them(tmp_path: Path) -> None:
    from extensibility.conda.channels import channel_urls

    assert channel_urls(["conda-forge", "nodefaults"], None, tmp_path) == ("conda-forge",)
    assert channel_urls(["defaults"], None, tmp_path) == (
        "https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
    assert channel_urls(["nodefaults"], None, tmp_path) == ("conda-forge",)


@pytest.mark.parametrize(("name", "pypi"), [
    ("pytorch", "torch"), ("python-kubernetes", "kubernetes"), ("dask-core", "dask"),
    ("pandas", "pandas"), ("scikit-learn", "scikit-learn"), ("pyyaml", "pyyaml"),
    ("requests", "requests"), ("snappy", None), ("glib", None), ("icu", None),
    ("libtiff", None), ("zstd", None), ("krb5", None), ("libxml2", None),
])
def test_only_names_known_to_be_pypi_packages_go_to_pypi(name: str, pypi: str | None) -> None:
    from extensibility.conda.names import pypi_name

    assert pypi_name(name) == pypi


def test_an_unknown_conda_name_is_never_sent_to_pypi(tmp_path: Path) -> None:
    import sys

    from extensibility.conda.request import read_conda_request
    from extensibility.errors import RequestNotSupported
    from extensibility.settings import Settings

    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    path = tmp_path / "conda.yaml"
    path.write_text(f"dependencies:\n  - python={minor}\n  - snappy\n  - pandas\n")
    overlay = Settings.from_environ({"EXTENSIBILITY_CONDA_STRATEGY": "overlay",
                                     "EXTENSIBILITY_CACHE_DIR": str(tmp_path / "c")})
    with pytest.raises(RequestNotSupported, match=r"conda.yaml:3: 'snappy'") as caught:
        read_conda_request(overlay, path, path.read_bytes(), {})
    assert "pip:" in str(caught.value)
    auto = Settings.from_environ({"EXTENSIBILITY_CACHE_DIR": str(tmp_path / "c")})
    conda, spec = read_conda_request(auto, path, path.read_bytes(), {})
    assert conda.decision.strategy == PREFIX  # conda provides it, not a look-alike from PyPI
    assert "snappy" not in [r.name for r in spec.requirements]
    assert any("not known to be a package on PyPI" in r for r in conda.decision.reasons)
