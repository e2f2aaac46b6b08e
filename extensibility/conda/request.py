"""A conda request turned into what the pipeline builds: a requirements spec for the overlay
(the same path as a requirements file) and, where needed, the conda prefix to put beside it.
"""

from __future__ import annotations

import sys
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extensibility.conda.channels import LocalChannels, channel_urls, is_local
from extensibility.conda.file import CondaFile, read_conda_file
from extensibility.conda.prefix import CondaLayout, rattler_available
from extensibility.conda.translate import OVERLAY, PREFIX, Decision, decide, explain, is_native
from extensibility.errors import PolicyViolation, RequestInvalid, RequestNotSupported
from extensibility.fingerprint import sha256_bytes
from extensibility.redact import redact_url, secret_digest
from extensibility.requirements import RequirementsSpec, parse_embedded
from extensibility.settings import Settings

CONDA_HOST = "conda.anaconda.org"  # where a channel given by name (conda-forge) is read


@dataclass(frozen=True)
class CondaRequest:
    """How a conda file is met: the decision, the prefix layout and what its solver gets."""

    file: CondaFile
    decision: Decision
    layout: CondaLayout | None  # None: no prefix
    specs: tuple[str, ...]  # what the conda solver gets
    channels: tuple[str, ...]  # the file's, or EXTENSIBILITY_CONDA_CHANNELS
    local: LocalChannels  # what the local ones among them hold, read once

    def key_part(self) -> dict[str, Any]:
        # variables may hold secrets: the key document (shown by `plan`) keeps their hashes;
        # channel URLs lose their credentials
        variables = {name: secret_digest(value)
                     for name, value in sorted(self.file.variables.items())}
        # local channels decide which packages are native, so they count even without a prefix
        part: dict[str, Any] = {"strategy": self.decision.strategy, "layout": self.layout,
                                "variables": variables, "channel_state": dict(self.local.state)}
        if self.layout is not None:
            part.update(specs=list(self.specs), channels=[redact_url(c) for c in self.channels])
        return part

    def describe(self) -> list[str]:
        lines = list(explain(self.decision, image_python=self.layout != CondaLayout.PYTHON))
        if self.layout is not None:
            where = ("its own Python, with the pip: section and the scoring server"
                     if self.layout == CondaLayout.PYTHON else "native packages beside the image's "
                     "Python")
            lines.append(f"conda prefix ({where}): {' '.join(self.specs)} from "
                         f"{', '.join(redact_url(c) for c in self.channels)}")
        lines += [f"ignored key `{key}`" for key in self.file.ignored_keys]
        return lines


def read_conda_request(settings: Settings, path: Path, data: bytes, env: Mapping[str, str],
                       python_version: str | None = None, image: Container[str] = ()
                       ) -> tuple[CondaRequest, RequirementsSpec]:
    """Read the conda file (`data`: its bytes, read once) and decide how to meet it, for
    `python_version` (default: this interpreter's) over an image with the `image`
    distributions."""
    running = python_version or sys.version.split()[0]
    conda = read_conda_file(path, data)
    channels = channel_urls(conda.channels, settings.conda_channels, path.parent)
    local = LocalChannels(channels)
    native = local.native
    decision = decide(conda, running, settings.conda_strategy, native, image)
    if decision.unknown and settings.conda_strategy == OVERLAY:
        lines = "\n  ".join(f"{s.origin}: {s.origin.text!r}" for s in decision.unknown)
        raise RequestNotSupported(
            f"{path}: these conda packages are not known to be packages on PyPI, and a name "
            f"there can be another project:\n  {lines}",
            fix="put each under `pip:` with its PyPI name if it is a Python package, or unset "
            "EXTENSIBILITY_CONDA_STRATEGY (a conda prefix then provides them; needs the conda "
            "extra), or serve them from a local channel (EXTENSIBILITY_CONDA_CHANNELS)")
    if decision.python_problem and decision.strategy == OVERLAY:
        raise RequestNotSupported(
            f"{decision.python_problem}; EXTENSIBILITY_CONDA_STRATEGY=overlay cannot change "
            "the image's Python",
            fix=f"pin python={_minor(running)} in {path.name}, or unset "
            "EXTENSIBILITY_CONDA_STRATEGY so a conda prefix with that Python is built")
    if decision.strategy == PREFIX and not rattler_available():
        raise RequestNotSupported(
            f"{path} cannot be met by this image: {'; '.join(decision.reasons)}; and a conda "
            "prefix cannot be built because py-rattler is not installed in the image",
            fix=_ways_out(decision, running, path))
    layout: CondaLayout | None = None
    specs: tuple[str, ...] = ()
    if decision.strategy == PREFIX:
        # a Python package only conda can provide (a build string, say) needs conda's Python
        # too: beside the image's Python it would not be importable
        if decision.python_problem or settings.conda_strategy == PREFIX or \
                not all(is_native(s, native) for s in decision.untranslatable):
            layout = CondaLayout.PYTHON
            specs = tuple(spec.origin.text for spec in conda.dependencies)
            if decision.python is None:
                specs = (f"python {_minor(running)}.*", *specs)
        else:
            layout = CondaLayout.NATIVE
            specs = tuple(spec.origin.text for spec in decision.untranslatable)
    if layout is not None:
        _check_channels(settings, path, channels)
    extra = [] if layout == CondaLayout.PYTHON else [(t.spec.origin, t.requirement)
                                                 for t in decision.translated]
    spec = parse_embedded(path, conda.pip, env, extra, digest=sha256_bytes(data))
    return CondaRequest(conda, decision, layout, specs, channels, local), spec


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _ways_out(decision: Decision, running: str, path: Path) -> str:
    extra = (f"or install the conda extra into the image (pip install "
             f"'inference-extensibility[conda]') so {path.name} gets a conda prefix")
    if decision.python_problem:
        return (f"either pin python={_minor(running)} (this image's Python) in {path.name} and "
                f"keep to packages that exist on PyPI, {extra} with its own Python")
    pip = (" (a conda package not known on PyPI: put it under `pip:` with its PyPI name if it "
           "is a Python package)" if decision.unknown else "")
    return (f"either drop the native packages from {path.name}{pip} or set "
            f"EXTENSIBILITY_CONDA_STRATEGY=overlay to leave native ones to the image, {extra}")


def _check_channels(settings: Settings, path: Path, channels: tuple[str, ...]) -> None:
    """The offline and allowed-hosts rules hold for conda channels as for package indexes."""
    from urllib.parse import urlsplit

    remote = [c for c in channels if not is_local(c)]
    if settings.wheelhouse and remote:
        raise RequestInvalid(
            f"{path}: EXTENSIBILITY_WHEELHOUSE makes the start offline, but the conda prefix "
            f"would use the channels {', '.join(redact_url(c) for c in remote)}",
            fix="mount a channel folder and set EXTENSIBILITY_CONDA_CHANNELS to it")
    if settings.allowed_index_hosts is None:
        return
    for channel in remote:
        try:
            host = (urlsplit(channel).hostname or "") if "://" in channel else CONDA_HOST
        except ValueError:
            raise RequestInvalid(f"{path}: conda channel {redact_url(channel)!r} is not a "
                                 "valid URL", fix="correct the channel URL") from None
        if host.lower() not in settings.allowed_index_hosts:
            raise PolicyViolation(
                f"{path}: conda channel {redact_url(channel)!r} is refused by "
                f"EXTENSIBILITY_ALLOWED_INDEX_HOSTS: host {host} is not in "
                f"{', '.join(sorted(settings.allowed_index_hosts))}",
                fix="use a channel on an allowed host (EXTENSIBILITY_CONDA_CHANNELS), or add "
                "the host to the list; or unset EXTENSIBILITY_ALLOWED_INDEX_HOSTS")
