"""What an environment's folder holds, behind one small interface.

Three layouts, one per way a request is met:
- `OverlayLayout`: a venv over the image's Python (requirements files, faithful conda files);
- `conda.layouts.NativePrefixLayout`: the same overlay, plus a conda prefix of native
  packages beside it;
- `conda.layouts.PythonPrefixLayout`: a conda prefix with its own Python and a venv on it.

The build (build.py) asks a layout to `create` the folder, installs into the `Site` it gets
back, checks it, and stores the layout's `activation` for the hand-off. To add a layout,
implement `Layout` and return it from `build.layout_for` (the layouts know nothing of
each other, nor of the choice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from extensibility.activation import Activation
from extensibility.log import Log
from extensibility.protection import Protection
from extensibility.requirements import RequirementsSpec
from extensibility.resolve import Resolved
from extensibility.start import Start


@dataclass(frozen=True)
class Site:
    """What a layout made, for the installer and the build check."""

    python: Path  # the interpreter the packages are installed for
    site_packages: Path  # its own site-packages
    resolve_python: str  # the interpreter uv resolves against (one that sees the image)
    isolated: bool  # the environment does not see the image's packages
    spec: RequirementsSpec  # what to install (a layout may add to the request)
    protection: Protection
    baseline: Mapping[str, str]  # packages visible before the install, name -> version
    base_dirs: tuple[str, ...]  # the image's site folders the environment sees


class Layout(Protocol):
    def create(self, root: Path, log: Log) -> Site:
        """Make the environment's interpreter at `root` (which does not exist yet)."""
        ...

    def activation(self, root: Path) -> Activation:
        """What the hand-off adds to the server's environment."""
        ...


class OverlayLayout:
    """A venv whose own site-packages come first and the image's after (overlay.py)."""

    def __init__(self, start: Start, resolved: Resolved) -> None:
        self.start = start
        self.resolved = resolved

    def create(self, root: Path, log: Log) -> Site:
        from extensibility.overlay import create_overlay, overlay_site_packages

        image, protection = self.start.image, self.resolved.protection
        log.phase("protect", protection.describe())
        python = create_overlay(root, image)
        log.phase("install", f"overlay created at {root}")
        return Site(python, overlay_site_packages(root), image.python, False,
                    self.resolved.spec, protection, image.distributions, image.site_dirs)

    def activation(self, root: Path) -> Activation:
        conda = self.resolved.conda
        return Activation(variables=dict(conda.file.variables)) if conda else Activation()
