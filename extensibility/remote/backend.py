"""What the remote cache needs from a blob store: five verbs, so a second store (S3, GCS)
is one new module and no change to the pipeline.

Blob names are relative to the store's root (the container and prefix of the URL):

    envs/KEY/manifest.json        written last: its presence means the archive is there
    envs/KEY/SHA256.tar.zst       the environment, named by its own checksum
    locks/KEY                     the blob whose lease is the cross-node build lock
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol
else:
    Protocol = object


class RemoteError(Exception):
    """The store could not be used (unreachable, refused, throttled, timed out, malformed).
    The message is already free of credentials."""


class LeaseTaken(Exception):
    """Another node holds the lease; `holder` is what it wrote about itself."""

    def __init__(self, holder: Mapping[str, str]) -> None:
        super().__init__("lease taken")
        self.holder = dict(holder)


class Blob:
    """One listed blob."""

    def __init__(self, name: str, size: int, modified: float) -> None:
        self.name = name
        self.size = size
        self.modified = modified


class Backend(Protocol):
    """A blob store. Every method raises RemoteError on any failure of the store."""

    description: str  # where it points, with no credential: for messages and `doctor`

    def get(self, name: str) -> tuple[bytes, str] | None:
        """A small blob's bytes and its version tag (etag); None if it does not exist."""
        ...

    def download(self, name: str, into: BinaryIO) -> int:
        """A large blob written into the seekable file `into` (parallel ranged reads);
        returns its size."""
        ...

    def put(self, name: str, data: bytes | BinaryIO, *, if_absent: bool = False,
            if_version: str | None = None) -> bool:
        """Write a blob. `if_absent`: only if no blob has that name; `if_version`: only if
        the blob still has that etag. Returns False when the condition did not hold."""
        ...

    def delete(self, name: str) -> None: ...

    def list(self, prefix: str) -> list[Blob]: ...

    def acquire(self, name: str, seconds: int, holder: Mapping[str, str]) -> str:
        """Take the lease on `name` (created if missing) and record `holder` on it; returns
        the lease id. Raises LeaseTaken if another holds it."""
        ...

    def renew(self, name: str, lease: str, holder: Mapping[str, str] | None = None) -> None:
        """Renew the lease; `holder`: record it again (the waiters' sign of progress)."""
        ...

    def break_lease(self, name: str) -> None:
        """End whatever lease is on `name` at once (a stale one)."""
        ...

    def release(self, name: str, lease: str) -> None: ...
