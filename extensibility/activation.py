"""What a start adds to the server's environment besides the overlay: a conda prefix's `bin`
and `lib`, and the conda file's `variables`.

Written into the environment's metadata by the build, read on every start (warm ones too),
so a cache hit hands off exactly as the build that made it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from extensibility.store import META

FILE = "activation.json"


class Activation:
    def __init__(self, path: tuple[str, ...] = (), library_path: tuple[str, ...] = (),
                 variables: Mapping[str, str] | None = None,
                 conda_prefix: str | None = None) -> None:
        self.path = path  # folders put on PATH after the overlay's bin
        self.library_path = library_path  # folders put first on LD_LIBRARY_PATH
        self.variables = dict(variables or {})
        self.conda_prefix = conda_prefix

    def empty(self) -> bool:
        return not (self.path or self.library_path or self.variables or self.conda_prefix)


def write_activation(meta_dir: Path, activation: Activation) -> None:
    if activation.empty():
        return
    document = {"path": list(activation.path), "library_path": list(activation.library_path),
                "variables": dict(activation.variables), "conda_prefix": activation.conda_prefix}
    (meta_dir / FILE).write_text(json.dumps(document, indent=1, sort_keys=True),
                                 encoding="utf-8")


def read_activation(root: Path) -> Activation:
    try:
        document = json.loads((root / META / FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Activation()
    return Activation(tuple(document["path"]), tuple(document["library_path"]),
                      dict(document["variables"]), document["conda_prefix"])


def apply_activation(activation: Activation, env: dict[str, str], overlay_bin: Path) -> None:
    """`env` already has the overlay's bin first on PATH; the prefix's bin comes right after."""
    env.update(activation.variables)
    if activation.path:
        rest = env.get("PATH", os.defpath)
        if rest.startswith(f"{overlay_bin}{os.pathsep}"):
            rest = rest[len(str(overlay_bin)) + 1:]
        env["PATH"] = os.pathsep.join([str(overlay_bin), *activation.path, rest])
    if activation.library_path:
        existing = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*activation.library_path,
                                                  *([existing] if existing else [])])
    if activation.conda_prefix:
        env["CONDA_PREFIX"] = activation.conda_prefix
