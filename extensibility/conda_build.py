"""The conda-prefix steps of a build (environment.py runs them inside its lock and cleanup).

Layout of an environment with a prefix: `ENV/conda` is the conda prefix; `ENV` itself is a
venv (over the image's Python for the "native" layout, over the prefix's Python for the
"python" layout), so the store, the cache marker and the hand-off treat both alike.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from extensibility.activation import Activation
from extensibility.conda_prefix import PREFIX_DIR, build_prefix, prefix_python
from extensibility.conda_request import CondaPlan
from extensibility.errors import InstallFailed
from extensibility.image import Image
from extensibility.log import Log
from extensibility.protection import Held, Protection, resolve_protection
from extensibility.requirements import Origin, Requirement, RequirementsSpec
from extensibility.settings import Settings


def native_layout(settings: Settings, conda: CondaPlan, root: Path, log: Log) -> None:
    """The native packages of the file, in a prefix beside the overlay."""
    _prefix(settings, conda, root, log)


def python_layout(settings: Settings, conda: CondaPlan, spec: RequirementsSpec, image: Image,
                  module: str | None, root: Path,
                  log: Log) -> tuple[Path, Protection, RequirementsSpec, Path]:
    """The prefix with the file's own Python, and a venv on it at `root` that will receive
    the `pip:` section plus the scoring server at the image's version.
    Returns (venv python, protection, spec with the server added, venv site-packages)."""
    prefix = _prefix(settings, conda, root, log)
    base = prefix_python(prefix)
    if base is None:
        raise InstallFailed(f"the conda packages of {conda.file.path} bring no Python "
                            f"({prefix}/bin/python is missing)",
                            fix="add `python=3.X` to the dependencies, or a channel that has "
                            "Python (EXTENSIBILITY_CONDA_CHANNELS)")
    _run([str(base), "-m", "venv", "--without-pip", "--symlinks", str(root)], "venv")
    python = root / "bin" / "python"
    purelib, version = _run([str(python), "-c", "import sys, sysconfig; "
                             "print(sysconfig.get_path('purelib')); print(sys.version.split()[0])"],
                            "site-packages").splitlines()
    site_packages = Path(purelib)
    log.phase("install", f"venv on the prefix's Python {version} created at {root}")
    server = resolve_protection("server", module, image).server if module else None
    if server is None:
        log.warning("protect", "the server command is not a console script of a package of "
                    "the image: no scoring server is installed on the prefix's Python")
        return python, Protection(settings.protect, module, None), spec, site_packages
    pin = f"{server}=={image.distributions[server]}"
    held = Held(server, image.distributions[server], ("the image's scoring server",))
    protection = Protection(settings.protect, module, server, {server: held})
    log.phase("protect", f"the scoring server is installed at the image's version: {pin}")
    origin = Origin(conda.file.path, 0, f"scoring server {pin}")
    server_line = Requirement(install_text=pin, key_text=pin, name=server, origin=origin)
    return python, protection, replace(spec, requirements=(*spec.requirements, server_line)), \
        site_packages


def activation_for(conda: CondaPlan, root: Path) -> Activation:
    if conda.layout is None:
        return Activation(variables=dict(conda.file.variables))
    prefix = root / PREFIX_DIR
    return Activation(path=(str(prefix / "bin"),), library_path=(str(prefix / "lib"),),
                      variables=dict(conda.file.variables), conda_prefix=str(prefix))


def _prefix(settings: Settings, conda: CondaPlan, root: Path, log: Log) -> Path:
    prefix = root / PREFIX_DIR
    build_prefix(prefix, conda.specs, conda.channels, settings.cache_dir / "downloads" / "conda",
                 settings.install_timeout, log)
    return prefix


def _run(command: list[str], what: str) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise InstallFailed(f"preparing the prefix's Python failed ({what}): "
                            f"{completed.stderr.strip() or completed.stdout.strip()}")
    return completed.stdout
