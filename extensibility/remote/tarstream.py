"""A tar stream read header by header, with every size bounded before anything is read.

`tarfile` reads a pax or GNU long-name header's data whole, whatever size the header
declares: a few kilobytes of zstd can declare gigabytes of zeros. This reader checks each
declared size against a small limit first, reads file contents in bounded chunks, and knows
only what `archive.pack` writes (ustar and pax headers, GNU long names): everything else is
refused. Its memory does not grow with any field of the archive.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

BLOCK = 512
MAX_EXTENDED = 64 << 10  # a pax header's records; pack writes a few hundred bytes
MAX_NAME = 4096  # bytes of a name or a link target (PATH_MAX)
MAX_EXTENSIONS = 4  # pax and long-name headers before one member
CHUNK = 1 << 20

REGULAR, HARDLINK, SYMLINK, FOLDER = "regular", "hard link", "link", "folder"
_KINDS = {b"0": REGULAR, b"\0": REGULAR, b"7": REGULAR, b"1": HARDLINK, b"2": SYMLINK,
          b"5": FOLDER, b"3": "device file", b"4": "device file", b"6": "named pipe"}


class TarError(Exception):
    """The stream is not a tar archive this reader accepts (the message says why)."""


class Member:
    """One member's header, its extended headers applied."""

    def __init__(self, name: str, kind: str, linkname: str, size: int, mode: int,
                 mtime: float) -> None:
        self.name, self.kind, self.linkname = name, kind, linkname
        self.size, self.mode, self.mtime = size, mode, mtime


class TarStream:
    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self._left = 0  # bytes of the current member's data not read yet
        self._padding = 0

    def _read(self, size: int) -> bytes:
        """Exactly `size` bytes (size is always bounded by the caller)."""
        parts: list[bytes] = []
        wanted = size
        while wanted:
            chunk = self.source.read(wanted)
            if not chunk:
                raise TarError("it ends in the middle of a member")
            parts.append(chunk)
            wanted -= len(chunk)
        return b"".join(parts)

    def chunks(self) -> Iterator[bytes]:
        """The current member's data, in chunks of at most CHUNK bytes."""
        while self._left:
            chunk = self._read(min(self._left, CHUNK))
            self._left -= len(chunk)
            yield chunk

    def _skip(self) -> None:
        for _ in self.chunks():
            pass
        if self._padding:
            self._read(self._padding)
            self._padding = 0

    def members(self) -> Iterator[Member]:
        first = True
        while True:
            self._skip()
            member = self._next(first)
            if member is None:
                return
            first = False
            self._left, self._padding = member.size, -member.size % BLOCK
            yield member

    def _next(self, first: bool) -> Member | None:
        pax: dict[str, str] = {}
        long_name = long_link = None
        for _ in range(MAX_EXTENSIONS + 1):
            header = self.source.read(BLOCK)
            if len(header) < BLOCK:
                header += self._read(BLOCK - len(header)) if header else b""
            if not header or header == bytes(BLOCK):
                if first:
                    raise TarError("it is empty")
                return None  # the end (the blocks after it are never read)
            _check_sum(header)
            kind, size = header[156:157], _number(header[124:136], "size")
            if kind in (b"x", b"L", b"K"):
                limit = MAX_EXTENDED if kind == b"x" else MAX_NAME + 1
                if size > limit:  # before a byte of it is read
                    raise TarError(f"an extended header of {size} bytes (at most {limit})")
                data = self._read(size)
                self._read(-size % BLOCK)
                if kind == b"x":
                    pax.update(_pax_records(data))
                elif kind == b"L":
                    long_name = _text(data.rstrip(b"\0"))
                else:
                    long_link = _text(data.rstrip(b"\0"))
                continue
            if kind == b"g":
                raise TarError("a global pax header (pack writes none)")
            return _member(header, kind, size, pax, long_name, long_link)
        raise TarError(f"more than {MAX_EXTENSIONS} extended headers before one member")


def _member(header: bytes, kind: bytes, size: int, pax: dict[str, str],
            long_name: str | None, long_link: str | None) -> Member:
    name = _text(_field(header[0:100]))
    if header[257:263] == b"ustar\0" and header[345] != 0:  # POSIX: name = prefix/name
        name = _text(_field(header[345:500])) + "/" + name
    name = pax.get("path", long_name or name)
    linkname = pax.get("linkpath", long_link or _text(_field(header[157:257])))
    if "size" in pax:
        size = _decimal(pax["size"], "size")
    mtime = _number(header[136:148], "mtime")
    try:
        stamp = float(pax["mtime"]) if "mtime" in pax else float(mtime)
    except ValueError:
        raise TarError("an unreadable mtime") from None
    if not math.isfinite(stamp):
        raise TarError("an unreadable mtime")
    return Member(name, _KINDS.get(kind, "special member"), linkname, size,
                  _number(header[100:108], "mode"), stamp)


def _check_sum(header: bytes) -> None:
    stored = _number(header[148:156], "checksum")
    unsigned = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
    signed = unsigned - 2 * sum(b for b in header[:148] + header[156:] if b > 127)
    if stored not in (unsigned, signed):
        raise TarError("a header with a wrong checksum")


def _field(raw: bytes) -> bytes:
    end = raw.find(b"\0")
    return raw if end == -1 else raw[:end]


def _text(raw: bytes) -> str:
    if len(raw) > MAX_NAME:
        raise TarError(f"a name of {len(raw)} bytes (at most {MAX_NAME})")
    return raw.decode("utf-8", "surrogateescape")


def _number(raw: bytes, what: str) -> int:
    if raw[:1] == b"\x80":  # GNU base-256, positive
        return int.from_bytes(raw[1:], "big")
    if raw[:1] == b"\xff":
        raise TarError(f"a negative {what}")
    digits = raw.replace(b"\0", b" ").strip()
    if not digits:
        return 0
    if any(d not in b"01234567" for d in digits):
        raise TarError(f"an unreadable {what}")
    return int(digits, 8)


def _decimal(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise TarError(f"an unreadable {what}")
    return int(text)


def _pax_records(data: bytes) -> dict[str, str]:
    """`LENGTH KEY=VALUE\\n` records (data is at most MAX_EXTENDED bytes)."""
    records: dict[str, str] = {}
    at = 0
    while at < len(data):
        space = data.find(b" ", at, at + 8)
        length = _decimal(data[at:space].decode("ascii", "replace"), "pax record") \
            if space > at else 0
        record = data[space + 1:at + length]
        if length <= 0 or at + length > len(data) or not record.endswith(b"\n") or \
                b"=" not in record:
            raise TarError("a malformed pax record")
        key, _, value = record[:-1].partition(b"=")
        name = key.decode("utf-8", "replace")
        if name.startswith("GNU.sparse"):
            raise TarError("a sparse file (pack writes none)")
        records[name] = _text(value)
        at += length
    return records
