"""The overlay: a venv whose own site-packages come first and the image's come after.

`venv --system-site-packages` would layer over the *base installation*, which is wrong when
the image's Python is itself a venv. Instead the overlay gets a `.pth` file that adds the
image's site folders (with `site.addsitedir`, so their own `.pth` files still run) after
the overlay's own.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from extensibility.image import Image

PTH_NAME = "_extensibility_image.pth"


def overlay_python(root: Path) -> Path:
    return root / "bin" / "python"


def overlay_site_packages(root: Path) -> Path:
    scheme = "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix"
    return Path(sysconfig.get_path("purelib", scheme, vars={"base": str(root),
                                                             "platbase": str(root)}))


def create_overlay(root: Path, image: Image) -> Path:
    """Create the overlay venv at `root` (which must not exist yet); returns its python."""
    import venv  # only a build needs it (it imports subprocess and more)

    # EnvBuilder links to sys._base_executable, so an image venv gives its base interpreter
    # (same stdlib); the image's packages come from the .pth file below.
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=False).create(str(root))
    site_packages = overlay_site_packages(root)
    site_packages.mkdir(parents=True, exist_ok=True)
    lines = [f"import site; site.addsitedir({directory!r})\n" for directory in image.site_dirs]
    (site_packages / PTH_NAME).write_text("".join(lines), encoding="utf-8")
    return overlay_python(root)
