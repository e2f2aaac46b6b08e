"""Reading the user's files: regular files only, bounded in size, never blocking.

A request may name any path (`-r /dev/zero`, a FIFO inside a local project, a link to a
device). Every file we read or hash is opened without blocking (O_NONBLOCK: a FIFO with no
writer does not hang the open), checked to be a regular file on the open descriptor (no
race with a rename), and read up to a limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from extensibility.errors import RequestInvalid

MAX_REQUEST_BYTES = 8 << 20  # a requirements or conda file (hash-pinned locks stay far below)


class NotRegular(OSError):
    """The path exists but is not a regular file (a FIFO, a device, a folder, a socket)."""


def open_regular(path: Path | str) -> int:
    """A read-only descriptor of `path`, which must be a regular file (links followed)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotRegular(f"{path} is not a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def read_regular(path: Path | str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (OSError, NotRegular, or
    ValueError when it is larger)."""
    descriptor = open_regular(path)
    try:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"{path} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def read_request_file(path: Path, what: str) -> bytes:
    """A requirements or conda file, or one it includes; a clear error (exit 95) otherwise."""
    try:
        return read_regular(path, MAX_REQUEST_BYTES)
    except NotRegular:
        raise RequestInvalid(f"{path} is not a regular file (a {what} must be one)",
                             fix="point the request at a regular file") from None
    except ValueError:
        raise RequestInvalid(f"{path} is larger than {MAX_REQUEST_BYTES >> 20} MiB",
                             fix=f"a {what} that large is not supported; split it") from None
    except OSError as exc:
        raise RequestInvalid(f"{path} cannot be read: {exc.strerror}",
                             fix="make the file readable by the user the container runs "
                             "as") from None
