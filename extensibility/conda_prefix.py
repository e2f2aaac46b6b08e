"""A real conda prefix, solved and installed by py-rattler (the optional `conda` extra).

Two layouts, both under the environment's folder (`ENV/conda` is the prefix):
- "python": the file's own Python comes from conda; a venv made from it (`ENV`) receives the
  `pip:` section and the scoring server at the image's version;
- "native": the image's Python stays (the overlay at `ENV`); the prefix only holds the native
  packages, found through PATH and LD_LIBRARY_PATH at hand-off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from extensibility.conda_file import CondaFile
from extensibility.errors import InstallFailed
from extensibility.log import Log
from extensibility.redact import redact_url

PREFIX_DIR = "conda"
PYTHON_LAYOUT = "python"
NATIVE_LAYOUT = "native"
DEFAULT_CHANNELS = ("conda-forge",)


def rattler_available() -> bool:
    try:
        import rattler  # noqa: F401
    except ImportError:
        return False
    return True


def channels_for(conda: CondaFile, override: str | None) -> tuple[str, ...]:
    """EXTENSIBILITY_CONDA_CHANNELS (comma-separated; for a mirror or an offline channel)
    replaces the file's channels; a local folder becomes a file:// URL (relative ones are
    taken from the conda file's folder)."""
    names = [c.strip() for c in override.split(",") if c.strip()] if override else []
    names = names or list(conda.channels) or list(DEFAULT_CHANNELS)
    return tuple(_channel_url(name, conda.path.parent) for name in names)


def _channel_url(name: str, base: Path) -> str:
    if "://" in name:
        return name
    if name.startswith((".", "/", "~")):
        return (base / Path(name).expanduser()).resolve().as_uri()
    return name  # a channel name, e.g. conda-forge


def channel_state(channels: Sequence[str]) -> dict[str, str]:
    """For local channels: a digest of their repodata, so a new package there changes the
    key (remote channels are taken as named, like an unpinned package index)."""
    state: dict[str, str] = {}
    for channel in channels:
        if not channel.startswith("file://"):
            continue
        digest = hashlib.sha256()
        for repodata in sorted(Path(channel[len("file://"):]).glob("*/repodata.json")):
            digest.update(repodata.parent.name.encode())
            digest.update(repodata.read_bytes())
        state[channel] = digest.hexdigest()[:16]
    return state


def local_native_names(channels: Sequence[str]) -> frozenset[str]:
    """Packages of local channels that do not depend on python: native ones, which only a
    prefix can provide (read straight from repodata.json; remote channels are not asked)."""
    import json

    python_packages: set[str] = set()
    names: set[str] = set()
    for channel in channels:
        if not channel.startswith("file://"):
            continue
        for repodata in Path(channel[len("file://"):]).glob("*/repodata.json"):
            document = json.loads(repodata.read_text(encoding="utf-8"))
            for group in ("packages", "packages.conda"):
                for record in (document.get(group) or {}).values():
                    names.add(record["name"])
                    if any(d.split()[0] == "python" for d in record.get("depends", ())):
                        python_packages.add(record["name"])
    return frozenset(names - python_packages)


def build_prefix(prefix: Path, specs: Sequence[str], channels: Sequence[str], cache_dir: Path,
                 timeout: float, log: Log) -> None:
    """Solve `specs` against `channels` and install the result into `prefix`."""
    import asyncio

    import rattler
    import rattler.exceptions

    async def solve_and_install() -> list[rattler.RepoDataRecord]:
        gateway = rattler.Gateway(cache_dir=cache_dir / "repodata")
        records = await rattler.solve(
            sources=list(channels), specs=list(specs), gateway=gateway,
            virtual_packages=rattler.VirtualPackage.detect(),
            timeout=None)
        log.phase("conda", f"solved: {len(records)} packages "
                  f"({', '.join(sorted(r.name.normalized for r in records))}); downloading "
                  f"and linking them into {prefix}")
        await rattler.install(records, target_prefix=prefix, cache_dir=cache_dir / "pkgs",
                              show_progress=False)
        return records

    shown = ", ".join(redact_url(c) for c in channels)
    log.phase("conda", f"solving {', '.join(specs)} from {shown}")
    try:
        records = asyncio.run(asyncio.wait_for(solve_and_install(), timeout))
    except TimeoutError:
        raise InstallFailed(f"the conda solve and install took longer than {timeout:.0f} s",
                            fix="raise EXTENSIBILITY_INSTALL_TIMEOUT, or use a closer channel "
                            "mirror (EXTENSIBILITY_CONDA_CHANNELS)") from None
    except rattler.exceptions.SolverError as exc:
        raise InstallFailed(f"the conda solver cannot satisfy the file:\n{redact_url(str(exc))}",
                            fix="relax or correct the conda dependencies named above, or add "
                            "the channel that has them") from None
    except (rattler.exceptions.FetchRepoDataError, rattler.exceptions.GatewayError) as exc:
        raise InstallFailed(f"cannot read the conda channels {shown}:\n{redact_url(str(exc))}",
                            fix="check the channel URLs; offline, point "
                            "EXTENSIBILITY_CONDA_CHANNELS at a local channel folder") from None
    except (rattler.exceptions.InstallerError, rattler.exceptions.TransactionError,
            rattler.exceptions.LinkError) as exc:
        raise InstallFailed("installing the conda packages failed:\n"
                            f"{redact_url(str(exc))}") from None
    for record in sorted(records, key=lambda r: r.name.normalized):
        log.phase("change", f"+ conda {record.name.normalized} {record.version} {record.build}")
    log.phase("conda", f"prefix ready: {prefix}")


def prefix_python(prefix: Path) -> Path | None:
    python = prefix / "bin" / "python"
    return python if python.exists() else None
