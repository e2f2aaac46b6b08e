"""An environment as one tar + zstd archive, and its careful unpacking.

Packing keeps paths relative to the environment's root and mtimes exact (a `.pyc` is valid
only for its source's mtime and size). A link that leaves the environment (a venv's
`bin/python`, which points at the image's interpreter) is not archived: it is listed, and
the restoring node makes it again only towards its own image's interpreter (relocate.py).

Unpacking trusts nothing in the archive, even after its checksum matched (whoever can write
the manifest can write the archive): only folders, regular files and links; no absolute
name, no `..`, no member under a link (which could lead outside), links only to a place
inside the environment, no set-uid bits, and never more files or bytes than the manifest said.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, BinaryIO

# what a restore writes itself, or what only made sense on the builder
SKIPPED = frozenset({".extensibility/complete", ".extensibility/last-access",
                     ".extensibility/compiled"})
LEVEL = 3  # zstd: fast on two cores, about pip's wheel compression ratio
# compiled test suites (numpy/tests/__pycache__/...): a sixth of a scientific stack's files,
# never imported by a server, and each file costs its restore an inode; their `__pycache__`
# folders stay (private), so an import of a test module still compiles safely
_TEST_BYTECODE_RE = re.compile(r"(^|/)tests?/(.*/)?__pycache__/[^/]+\.pyc$")
COPY_CHUNK = 1 << 20


class UnsafeArchive(Exception):
    """The archive holds something that must not be unpacked (named in the message)."""


class Packed:
    """What `pack` wrote: the manifest's numbers."""

    def __init__(self, sha256: str, size: int, files: int, unpacked: int,
                 external_links: dict[str, str]) -> None:
        self.sha256 = sha256
        self.size = size
        self.files = files  # members of every kind
        self.unpacked = unpacked  # bytes of the regular files
        self.external_links = external_links  # relative path -> absolute target


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


def pack(root: Path, into: BinaryIO) -> Packed:
    """Write the environment at `root` into `into` as tar + zstd."""
    import zstandard

    writer = _HashingWriter(into)
    external: dict[str, str] = {}
    files = unpacked = 0
    compressor = zstandard.ZstdCompressor(level=LEVEL, threads=-1)
    stream = compressor.stream_writer(writer, closefd=False)  # type: ignore[arg-type]
    with stream as compressed, \
            tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(root):
            name = path.relative_to(root).as_posix()
            if name in SKIPPED or _TEST_BYTECODE_RE.search(name):
                continue
            if path.is_symlink():
                target = os.readlink(path)
                inside = _inside(name, target) if not os.path.isabs(target) else None
                if inside is None:
                    external[name] = target if os.path.isabs(target) \
                        else os.path.normpath(os.path.join(path.parent, target))
                    continue
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            files += 1
            if info.isreg():
                unpacked += info.size
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return Packed(writer.digest.hexdigest(), writer.size, files, unpacked, external)


def _walk(root: Path) -> Iterable[Path]:
    """Every path under `root`, a folder before its contents, sorted (stable archives)."""
    for current, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(current)
        for name in sorted(dirs + files):
            yield base / name


def _inside(name: str, target: str) -> str | None:
    """Where the relative link `name -> target` lands, relative to the root (None: outside)."""
    landed = os.path.normpath(os.path.join(os.path.dirname(name), target))
    if landed == ".." or landed.startswith("../") or os.path.isabs(landed):
        return None
    return landed


def checksum(handle: BinaryIO) -> tuple[str, int]:
    """sha256 and size of a file, from its start."""
    handle.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(COPY_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


def unpack(source: BinaryIO, root: Path, *, max_files: int, max_bytes: int) -> int:
    """Unpack into the new folder `root` (which must not exist); returns the members written.
    Raises UnsafeArchive on the first member that breaks a rule.

    (Writing the files from a thread pool was measured: no faster here, where creating the
    inodes is the cost, so it is done in order.)"""
    import zstandard

    root.mkdir(mode=0o700)
    links: set[str] = set()
    written = total = 0
    reader = zstandard.ZstdDecompressor().stream_reader(source, closefd=False)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                name = _checked_name(member.name, links)
                written += 1
                if written > max_files:
                    raise UnsafeArchive(f"more members than the manifest's {max_files}")
                target = root / name
                if member.isdir():
                    target.mkdir(mode=0o700, exist_ok=True)
                    if target.is_symlink() or not target.is_dir():
                        raise UnsafeArchive(f"{name}: a folder over something else")
                    os.chmod(target, stat.S_IMODE(member.mode) & 0o755 | 0o700)
                elif member.isreg():
                    total += member.size
                    if total > max_bytes:
                        raise UnsafeArchive(f"more bytes than the manifest's {max_bytes}")
                    extracted = tar.extractfile(member)
                    if extracted is None:
                        raise UnsafeArchive(f"{name}: unreadable")
                    _write(target, extracted, stat.S_IMODE(member.mode) & 0o755 | 0o600,
                           member.mtime)
                elif member.issym():
                    if os.path.isabs(member.linkname) or _inside(name, member.linkname) is None:
                        raise UnsafeArchive(f"{name}: a link to {member.linkname!r}, outside "
                                            "the environment")
                    os.symlink(member.linkname, target)
                    links.add(name)
                elif member.islnk():
                    source_name = _checked_name(member.linkname, links)
                    os.link(root / source_name, target, follow_symlinks=False)
                else:
                    raise UnsafeArchive(f"{name}: a {_kind(member)}, not a file, folder or link")
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise UnsafeArchive(f"the archive is damaged: {exc}") from None
    except FileExistsError as exc:
        raise UnsafeArchive(f"{exc.filename}: a member written twice") from None
    return written


def _write(target: Path, source: IO[bytes], mode: int, mtime: float) -> None:
    """A new file (never through a link, never over an existing one), its mode and mtime."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        while chunk := source.read(COPY_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def _checked_name(name: str, links: set[str]) -> str:
    clean = name.rstrip("/")
    parts = clean.split("/")
    if not clean or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UnsafeArchive(f"{name!r}: an absolute or climbing path")
    for depth in range(1, len(parts)):
        if "/".join(parts[:depth]) in links:
            raise UnsafeArchive(f"{name!r}: under the link {'/'.join(parts[:depth])!r}")
    return clean


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "named pipe"
    return "special member"
