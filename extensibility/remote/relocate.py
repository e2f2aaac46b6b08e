"""Make an environment unpacked at another path work there.

A venv names its own absolute path in a few text files: the console scripts' `#!` lines,
`pyvenv.cfg`, `.pth` and `.egg-link` files, the wheels' `RECORD`s and our own metadata. The
builder's root is replaced by the new one in exactly those files. Compiled modules need
nothing: the import system points a `.pyc`'s code at the source it was loaded for.

The links the archive left out (relocate `external_links`) are made again only when they
point at this node's image interpreter: the key says the builder's image was the same one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

MAX_TEXT = 4 << 20  # a script or RECORD larger than this is not a text file we rewrite


class NotRelocatable(Exception):
    pass


def _candidates(root: Path, records: Path) -> Iterable[Path]:
    bin_dir = root / "bin"
    if bin_dir.is_dir():
        yield from (p for p in bin_dir.iterdir() if p.is_file() and not p.is_symlink())
    yield root / "pyvenv.cfg"
    yield from records.glob("*.json")
    for site in root.glob("lib/python*/site-packages"):
        yield from site.glob("*.pth")
        yield from site.glob("*.egg-link")
        yield from site.glob("*.dist-info/RECORD")


def relocate(root: Path, old_root: str, external_links: Mapping[str, str],
             interpreter: str, *, records: Path) -> int:
    """Rewrite `old_root` to `root` where a venv records it (and in the store's `records`
    folder of the environment); make the left-out links again. Returns the files changed."""
    old, new = old_root.encode(), str(root).encode()
    changed = 0
    if old != new:
        for path in _candidates(root, records):
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_TEXT:
                continue
            data = path.read_bytes()
            if old not in data or b"\0" in data:
                continue  # binary files are left as built
            info = path.stat()
            temporary = path.with_name(f".{path.name}.relocating")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         info.st_mode & 0o777)
            with os.fdopen(fd, "wb") as out:
                out.write(data.replace(old, new))
            os.utime(temporary, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.replace(temporary, path)
            changed += 1
    own = os.path.realpath(interpreter)
    for name, target in sorted(external_links.items()):
        if os.path.realpath(target) != own:
            raise NotRelocatable(f"{name} pointed at {target}, not this image's interpreter "
                                 f"({own})")
        link = root / name
        if not link.parent.is_dir() or link.parent.is_symlink() or os.path.lexists(link):
            raise NotRelocatable(f"{name}: cannot be made again here")
        os.symlink(target, link)
    return changed
