"""Conda channels: which ones a file uses, and what the local ones hold.

The one place that reads a local channel's `repodata.json`: its digest joins the key (a new
package there can change what is native or what the solver picks) and its packages that do
not depend on python are the native ones only a prefix can provide. Remote channels are
taken as named, like an unpinned package index.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from extensibility.inputs import read_regular

DEFAULT_CHANNELS = ("conda-forge",)
NODEFAULTS = "nodefaults"
ANACONDA_DEFAULTS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
MAX_REPODATA = 1 << 30
LOCAL_SCHEME = "file://"


def channel_urls(names: Iterable[str], override: str | None, base: Path) -> tuple[str, ...]:
    """EXTENSIBILITY_CONDA_CHANNELS (comma-separated; for a mirror or an offline channel)
    replaces the file's channels; a local folder becomes a file:// URL (relative ones are
    taken from the conda file's folder)."""
    chosen = [c.strip() for c in override.split(",") if c.strip()] if override else []
    chosen = chosen or list(names)
    # as conda: `nodefaults` drops the default channels, `defaults` is Anaconda's own
    chosen = [url for name in chosen if name != NODEFAULTS
              for url in (ANACONDA_DEFAULTS if name == "defaults" else (name,))]
    chosen = chosen or list(DEFAULT_CHANNELS)
    return tuple(dict.fromkeys(_channel_url(name, base) for name in chosen))


def _channel_url(name: str, base: Path) -> str:
    if "://" in name:
        return name
    if name.startswith((".", "/", "~")):
        return (base / Path(name).expanduser()).resolve().as_uri()
    return name  # a channel name, e.g. conda-forge


def is_local(channel: str) -> bool:
    return channel.startswith(LOCAL_SCHEME)


def _repodata_files(channel: str) -> list[Path]:
    return sorted(Path(channel[len(LOCAL_SCHEME):]).glob("*/repodata.json"))


class LocalChannels:
    """The local channels among `channels`, each read once."""

    def __init__(self, channels: Sequence[str]) -> None:
        self.state: dict[str, str] = {}  # channel URL -> digest of its repodata
        self.native: frozenset[str] = frozenset()
        python_packages: set[str] = set()
        names: set[str] = set()
        for channel in channels:
            if not is_local(channel):
                continue
            digest = hashlib.sha256()
            for repodata in _repodata_files(channel):
                data = read_regular(repodata, MAX_REPODATA)
                digest.update(repodata.parent.name.encode())
                digest.update(data)
                _collect_names(json.loads(data), names, python_packages)
            self.state[channel] = digest.hexdigest()[:16]
        self.native = frozenset(names - python_packages)


def _collect_names(document: Mapping[str, object], names: set[str], python: set[str]) -> None:
    for group in ("packages", "packages.conda"):
        records = document.get(group) or {}
        assert isinstance(records, dict)
        for record in records.values():
            names.add(record["name"])
            if any(d.split()[0] == "python" for d in record.get("depends", ())):
                python.add(record["name"])


def unchanged(state: Mapping[str, str]) -> bool:
    """Whether local channels still hold what they held when `state` was taken."""
    return LocalChannels(list(state)).state == dict(state)
