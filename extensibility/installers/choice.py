"""Which installer a start uses: uv when installed (unless told otherwise), else pip."""

from __future__ import annotations

import os
import sys
import sysconfig

from extensibility.errors import SettingsError
from extensibility.server_command import which


def find_uv() -> str | None:
    """uv next to the image's interpreter (the `uv` extra), else on PATH."""
    candidates = [os.path.join(os.path.dirname(sys.executable), "uv"),
                  os.path.join(sysconfig.get_path("scripts"), "uv")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return which("uv", os.environ.get("PATH", os.defpath))


def choose_installer(choice: str) -> tuple[str, str | None]:
    """Installer name and, for uv, its binary. Cheap: a few stat calls, no subprocess."""
    if choice == "pip":
        return "pip", None
    uv = find_uv()
    if uv:
        return "uv", uv
    if choice == "uv":
        raise SettingsError("EXTENSIBILITY_INSTALLER=uv but no uv executable was found next "
                            f"to {sys.executable} or on PATH",
                            fix="install the `uv` extra into the image, or set "
                            "EXTENSIBILITY_INSTALLER=auto or pip")
    return "pip", None
