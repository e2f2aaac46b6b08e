"""Which installer a start uses: uv when installed (unless told otherwise), else pip; and
the backend object for that choice (the backends know nothing of the choice)."""

from __future__ import annotations

import os
import sys
import sysconfig

from extensibility.errors import SettingsError
from extensibility.server_command import which

TYPE_CHECKING = False
if TYPE_CHECKING:
    from extensibility.installers.base import Installer


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


def make_installer(name: str, uv: str | None) -> Installer:
    """The backend `choose_installer` chose (imported here: a warm start needs neither)."""
    if name == "uv":
        from extensibility.installers.uv import UvInstaller

        if uv is None:
            raise SettingsError("the uv installer was chosen without a uv executable",
                                fix="set EXTENSIBILITY_INSTALLER=pip, or install the `uv` extra")
        return UvInstaller(uv)
    from extensibility.installers.pip import PipInstaller

    return PipInstaller()
