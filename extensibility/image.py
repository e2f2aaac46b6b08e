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
from functools import cached_property

_SEPARATORS_RE = re.compile(r"[-_.]+")
# `name-version.dist-info`; names in these folders never contain "-" (PEP 427 escaping)
_DIST_INFO_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$")
_EGG_INFO_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-py\d[^-]*)?\.egg-info$")


class Image:
    """The interpreter running the entrypoint and its site folders: what an overlay layers
    over. Its package listing is read once, when first asked for."""

    def __init__(self, executable: str, prefix: str, version: str, cache_tag: str,
                 abiflags: str, platform: str, site_dirs: tuple[str, ...],
                 python: str | None = None) -> None:
        self.executable = executable  # realpath of the interpreter
        # the interpreter as started (an image venv's bin/python, not its base): this one
        # sees the image's packages
        self.python = python or executable
        self.prefix = prefix
        self.version = version
        self.cache_tag = cache_tag
        self.abiflags = abiflags
        self.platform = platform
        self.site_dirs = site_dirs  # the image's site-packages, in import order

    @cached_property
    def distributions(self) -> Mapping[str, str]:
        """Canonical name -> version of every distribution the image provides; the first
        one on the path wins, as at import time."""
        found: dict[str, str] = {}
        for entries in self._scans.values():
            for name, version in entries:
                found.setdefault(name, version)
        return found

    @cached_property
    def listing(self) -> Mapping[str, list[str]]:
        """Per site folder, sorted `name==version`: the image's package set in the key."""
        return {directory: sorted(f"{n}=={v}" for n, v in entries)
                for directory, entries in self._scans.items()}

    @cached_property
    def _scans(self) -> dict[str, list[tuple[str, str]]]:
        return {directory: scan_distributions(directory) for directory in self.site_dirs}

    def identity(self) -> dict[str, str]:
        return {"executable": self.executable, "prefix": self.prefix, "version": self.version,
                "cache_tag": self.cache_tag, "abiflags": self.abiflags,
                "platform": self.platform}


def canonical_name(name: str) -> str:
    """PEP 503 normalisation (as packaging.utils.canonicalize_name, without its imports)."""
    return _SEPARATORS_RE.sub("-", name).lower()


def current_image() -> Image:
    return Image(
        executable=os.path.realpath(sys.executable),
        python=sys.executable,
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
