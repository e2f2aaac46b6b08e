"""An environment as one tar + zstd archive, and its careful unpacking.

Packing keeps paths relative to the environment's root and mtimes exact (a `.pyc` is valid
only for its source's mtime and size). A link that leaves the environment (a venv's
`bin/python`, which points at the image's interpreter) is not archived: it is listed, and
the restoring node makes it again only towards its own image's interpreter (relocate.py).

Unpacking trusts nothing in the archive, even after its checksum matched (whoever can write
the manifest can write the archive): headers read with bounded sizes (tarstream.py); only
folders, regular files and links; no absolute name, no `..`, no name the file system would
refuse; every member made relative to its folder's descriptor, walked from the root with
O_NOFOLLOW, so nothing is ever written through a link; links only to a place inside the
environment, read from the link's own folder; hard links only to files this unpacking wrote;
no set-uid bits; never more files or bytes than the manifest said.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

from extensibility.log import escaped
from extensibility.remote.tarstream import (
    FOLDER,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TarError,
    TarStream,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

# what a restore writes itself, or what only made sense on the builder
SKIPPED = frozenset({".extensibility/complete", ".extensibility/last-access",
                     ".extensibility/compiled"})
LEVEL = 3  # zstd: fast on two cores, about pip's wheel compression ratio
# compiled test suites (numpy/tests/__pycache__/...): a sixth of a scientific stack's files,
# never imported by a server, and each file costs its restore an inode; their `__pycache__`
# folders stay (private), so an import of a test module still compiles safely
_TEST_BYTECODE_RE = re.compile(r"(^|/)tests?/(.*/)?__pycache__/[^/]+\.pyc$")
COPY_CHUNK = 1 << 20
MAX_PART = 255  # bytes of one name in a path (NAME_MAX)


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
                if not _link_inside(name, target):
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


def _link_inside(name: str, target: str) -> bool:
    """Whether the link `name -> target` lands inside the root, read from the link's own
    folder without following any link: the target may only climb (`..`) first, within the
    link's depth, then go down. Climbing after going down could pass through a link (`l/..`
    is the parent of wherever `l` points), so it is refused."""
    if not target or os.path.isabs(target) or "\0" in target:
        return False
    depth = name.count("/")  # the link's folder is this deep
    down = False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            down = True
        elif down or depth == 0:
            return False
        else:
            depth -= 1
    return True


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
    Raises UnsafeArchive on the first member that breaks a rule (what was written stays
    inside `root`, for the caller to remove).

    Every member is made relative to an open descriptor of its folder, reached from the
    root's one name at a time with O_NOFOLLOW: no name is ever resolved through a link, so
    a link (made by this archive or not) cannot lead a later member out.

    (Writing the files from a thread pool was measured: no faster here, where creating the
    inodes is the cost, so it is done in order.)"""
    import zstandard

    root.mkdir(mode=0o700)
    written = total = 0
    regular: set[str] = set()  # the files unpacked so far: the only hard-link targets
    reader = zstandard.ZstdDecompressor().stream_reader(source, closefd=False)
    folders, sources = _Folders(root), _Folders(root)
    try:
        stream = TarStream(reader)
        for member in stream.members():
            written += 1
            if written > max_files:
                raise UnsafeArchive(f"more members than the manifest's {max_files}")
            name = _checked_name(member.name)
            parts = name.split("/")
            if member.kind != REGULAR and member.size:
                raise UnsafeArchive(f"{escaped(name)}: a {member.kind} with contents")
            if member.kind not in (REGULAR, FOLDER, SYMLINK, HARDLINK):
                raise UnsafeArchive(f"{escaped(name)}: a {member.kind}, not a file, folder "
                                    "or link")
            parent, leaf = folders.open(parts[:-1], name), parts[-1]
            if member.kind == FOLDER:
                _make_folder(parent, leaf, name, stat.S_IMODE(member.mode) & 0o755 | 0o700)
            elif member.kind == REGULAR:
                total += member.size
                if total > max_bytes:
                    raise UnsafeArchive(f"more bytes than the manifest's {max_bytes}")
                _write(parent, leaf, stream.chunks(), stat.S_IMODE(member.mode) & 0o755 | 0o600,
                       member.mtime)
                regular.add(name)
            elif member.kind == SYMLINK:
                if not _link_inside(name, member.linkname):
                    raise UnsafeArchive(f"{escaped(name)}: a link to "
                                        f"{escaped(member.linkname)!r}, outside the environment "
                                        "or through another link")
                os.symlink(member.linkname, leaf, dir_fd=parent)
            else:
                target = _checked_name(member.linkname)
                if target not in regular:
                    raise UnsafeArchive(f"{escaped(name)}: a hard link to "
                                        f"{escaped(target)!r}, which is not a file unpacked "
                                        "before it")
                target_parts = target.split("/")
                os.link(target_parts[-1], leaf, src_dir_fd=sources.open(target_parts[:-1], target),
                        dst_dir_fd=parent, follow_symlinks=False)
                regular.add(name)
    except (TarError, zstandard.ZstdError) as exc:
        raise UnsafeArchive(f"the archive is damaged: {exc}") from None
    except FileExistsError as exc:
        raise UnsafeArchive(f"{escaped(str(exc.filename))}: a member written twice") from None
    finally:
        folders.close()
        sources.close()
    return written


class _Folders:
    """Open descriptors of the folders from the root down to the current member's folder,
    each opened relative to its parent with O_NOFOLLOW. Members come folder by folder, so
    most of the path is kept from one member to the next (descriptors: the depth)."""

    def __init__(self, root: Path) -> None:
        self._open: list[tuple[str, int]] = [
            ("", os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC))]

    def open(self, parts: list[str], name: str) -> int:
        """The descriptor of the folder `parts` (relative to the root)."""
        keep = 1
        while keep < len(self._open) and keep <= len(parts) and \
                self._open[keep][0] == "/".join(parts[:keep]):
            keep += 1
        for _, fd in self._open[keep:]:
            os.close(fd)
        del self._open[keep:]
        for depth in range(keep, len(parts) + 1):
            here, parent = "/".join(parts[:depth]), self._open[-1][1]
            try:
                fd = os.open(parts[depth - 1], _FOLDER_FLAGS, dir_fd=parent)
            except OSError as exc:
                raise UnsafeArchive(_not_a_folder(name, here, parts[depth - 1], parent,
                                                  exc)) from None
            self._open.append((here, fd))
        return self._open[-1][1]

    def close(self) -> None:
        for _, fd in self._open:
            os.close(fd)
        self._open = []


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _not_a_folder(name: str, folder: str, leaf: str, parent: int, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{escaped(name)}: its folder {escaped(folder)!r} is not in the archive before it"
    try:
        is_link = stat.S_ISLNK(os.stat(leaf, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        is_link = False
    return f"{escaped(name)!r}: under the {'link' if is_link else 'file'} {escaped(folder)!r}"


def _make_folder(parent: int, leaf: str, name: str, mode: int) -> None:
    with contextlib.suppress(FileExistsError):  # listed twice: fine if it is a folder
        os.mkdir(leaf, 0o700, dir_fd=parent)
    try:
        fd = os.open(leaf, _FOLDER_FLAGS, dir_fd=parent)
    except OSError:
        raise UnsafeArchive(f"{escaped(name)}: a folder over something else") from None
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _write(parent: int, leaf: str, chunks: Iterable[bytes], mode: int, mtime: float) -> None:
    """A new file (never through a link, never over an existing one), its mode and mtime."""
    fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=parent)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def _checked_name(name: str) -> str:
    """A member's name, relative and plain: no absolute path, no `..`, no name longer than
    the file system takes (which would fail the write, not refuse the archive)."""
    clean = name.rstrip("/")
    parts = clean.split("/")
    if not clean or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UnsafeArchive(f"{escaped(name)!r}: an absolute or climbing path")
    if "\0" in clean or any(len(os.fsencode(p)) > MAX_PART for p in parts):
        raise UnsafeArchive(f"{escaped(name[:80])!r}...: a name part longer than {MAX_PART} "
                            "bytes, or a NUL")
    return clean

