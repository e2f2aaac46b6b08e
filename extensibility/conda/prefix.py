"""A real conda prefix, solved and installed by py-rattler (the optional `conda` extra).

Two layouts, both under the environment's folder (`ENV/conda` is the prefix):
- "python": the file's own Python comes from conda; a venv made from it (`ENV`) receives the
  `pip:` section and the scoring server at the image's version;
- "native": the image's Python stays (the overlay at `ENV`); the prefix only holds the native
  packages, found through PATH and LD_LIBRARY_PATH at hand-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from pathlib import Path

from extensibility.errors import InstallFailed
from extensibility.log import Log
from extensibility.redact import redact_url

PREFIX_DIR = "conda"


class CondaLayout(str, Enum):
    """How a conda prefix is laid out under an environment (see the module's docstring)."""

    PYTHON = "python"
    NATIVE = "native"

    def __str__(self) -> str:
        return self.value


def rattler_available() -> bool:
    try:
        import rattler  # noqa: F401
    except ImportError:
        return False
    return True


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
    except (TimeoutError, asyncio.TimeoutError):  # one class from 3.11 on, two before
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
