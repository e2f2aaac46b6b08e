"""The image: the interpreter running the entrypoint and the packages it already has.

Everything here is cheap on purpose (no metadata files are read): it runs on every start.
"""

from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

_SEPARATORS_RE = re.compile(r"[-_.]+")
# `name-version.dist-info`; names in these folders never contain "-" (PEP 427 escaping)
_DIST_INFO_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$")
_EGG_INFO_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-py\d[^-]*)?\.egg-info$")


@dataclass(frozen=True)
class Image:
    executable: str  # realpath of the interpreter
    prefix: str
    version: str
    cache_tag: str
    abiflags: str
    platform: str
    site_dirs: tuple[str, ...]  # the image's site-packages, in import order

    @cached_property
    def distributions(self) -> Mapping[str, str]:
        """Canonical name -> version of every distribution the image provides; the first
        one on the path wins, as at import time."""
        found: dict[str, str] = {}
        for name, version in self._entries():
            found.setdefault(name, version)
        return found

    def distribution_listing(self) -> dict[str, list[str]]:
        """Per site folder, sorted `name==version`: the image's package set in the key."""
        listing: dict[str, list[str]] = {}
        for directory in self.site_dirs:
            listing[directory] = sorted(f"{n}=={v}" for n, v in scan_distributions(directory))
        return listing

    def identity(self) -> dict[str, str]:
        return {"executable": self.executable, "prefix": self.prefix, "version": self.version,
                "cache_tag": self.cache_tag, "abiflags": self.abiflags,
                "platform": self.platform}

    def _entries(self) -> list[tuple[str, str]]:
        return [entry for directory in self.site_dirs for entry in scan_distributions(directory)]


def canonical_name(name: str) -> str:
    """PEP 503 normalisation (as packaging.utils.canonicalize_name, without its imports)."""
    return _SEPARATORS_RE.sub("-", name).lower()


def current_image() -> Image:
    return Image(
        executable=os.path.realpath(sys.executable),
        prefix=sys.prefix,
        version=sys.version.split()[0],
        cache_tag=sys.implementation.cache_tag or "",
        abiflags=getattr(sys, "abiflags", ""),
        platform=sysconfig.get_platform(),
        site_dirs=tuple(d for d in site.getsitepackages() if os.path.isdir(d)),
    )


def scan_distributions(directory: str) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return entries
    for name in names:
        match = _DIST_INFO_RE.match(name) or _EGG_INFO_RE.match(name)
        if match:
            entries.append((canonical_name(match.group("name")), match.group("version")))
    return entries
