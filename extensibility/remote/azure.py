"""The remote cache on Azure Blob Storage (and its emulator, Azurite), with azure-storage-blob.

URL forms: `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]` and, for the emulator
or any address given by IP, the path-style `http://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX]`.
Credentials, first found wins: a SAS token in the URL's query; `AZURE_STORAGE_CONNECTION_STRING`
(its account key or SAS); the pod's identity through `azure-identity` when it is installed;
else anonymous (a public container, read-only).

Failures must cost a start a bounded few seconds: short connect and read timeouts, one quick
retry (the SDK's default waits 15 s before retrying), and every error becomes RemoteError.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from extensibility.log import escaped
from extensibility.redact import redact_url
from extensibility.remote.backend import Blob, LeaseTaken, RemoteError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TypeVar

    T = TypeVar("T")

CONNECT_TIMEOUT = 3  # seconds to open a connection
READ_TIMEOUT = 30  # seconds without a byte on an open connection, while moving an archive
# a small request (manifest, lease, listing) answered within this, or the store is taken
# for dead: with one retry, a hung endpoint costs a start about 10 s, once
QUICK: dict[str, Any] = {"read_timeout": 4}
CHUNK = 4 << 20  # ranged reads and block writes of 4 MiB, several at once
CONCURRENCY = 4
# a whole archive's download: a store that trickles (each read just within READ_TIMEOUT)
# cannot hold a start longer than this
DOWNLOAD_SECONDS = 300.0


class Location:
    """Where a remote cache URL points: account endpoint, container, prefix, SAS."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("it must be an http(s) URL of a blob container")
        segments = [s for s in parts.path.split("/") if s]
        host = parts.hostname
        path_style = host == "localhost" or _is_address(host)
        account_segments = segments[:1] if path_style else []
        rest = segments[len(account_segments):]
        if not rest:
            raise ValueError("it names no container (…/CONTAINER[/PREFIX])")
        # a user name or password is no credential of Blob Storage: never sent, never shown
        # (messages, `doctor`, origin.json)
        self.account_url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" + "".join(
            f"/{s}" for s in account_segments)
        self.container = rest[0]
        self.prefix = "".join(f"{s}/" for s in rest[1:])
        self.sas = parts.query or None
        self.description = f"{self.account_url}/{self.container}/{self.prefix}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _connection_string_credential(text: str) -> Any:
    fields = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    if fields.get("SharedAccessSignature"):
        return fields["SharedAccessSignature"]
    if fields.get("AccountName") and fields.get("AccountKey"):
        return {"account_name": fields["AccountName"], "account_key": fields["AccountKey"]}
    return None


def _credential(location: Location, env: Mapping[str, str]) -> tuple[Any, str]:
    """The credential and how it was found (for `doctor`; never the secret itself)."""
    if location.sas:
        return location.sas, "SAS token in the URL"
    connection = env.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    if connection:
        found = _connection_string_credential(connection)
        if found is not None:
            return found, "AZURE_STORAGE_CONNECTION_STRING"
    if location.account_url.startswith("https://"):  # the SDK sends tokens over https only
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            pass
        else:
            return DefaultAzureCredential(), "azure-identity (managed identity or environment)"
    return None, "anonymous (no SAS token, no connection string, no azure-identity over https)"


def _clean(exc: BaseException) -> str:
    """An SDK error in one line, without credentials (messages can quote the URL)."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # the SDK's enum, or the service's string
    tags = " ".join(str(t) for t in (status, code) if t)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return escaped(redact_url(f"{type(exc).__name__}{f' ({tags})' if tags else ''}: {text}"))[:300]


class _SharedDescriptor:
    """A duplicate of a file's descriptor for the download threads, closed by the last one
    to finish: a thread left behind never writes into a descriptor number reused since."""

    def __init__(self, fd: int, users: int) -> None:
        self.fd, self.users, self.lock = os.dup(fd), users, threading.Lock()

    def write(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                os.close(self.fd)


def _raise(exc: BaseException) -> None:
    raise exc


class AzureBackend:
    def __init__(self, url: str, env: Mapping[str, str]) -> None:
        from azure.storage.blob import ContainerClient, LinearRetry

        self.location = self._call("reading the URL", lambda: Location(url))
        self.description = self.location.description
        credential, self.credential_source = self._call(
            "reading the credentials", lambda: _credential(self.location, env))
        self._client = self._call("opening the client", lambda: ContainerClient(
            self.location.account_url, self.location.container, credential=credential,
            retry_policy=LinearRetry(backoff=1, random_jitter_range=1, retry_total=1),
            connection_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
            max_single_get_size=CHUNK, max_chunk_get_size=CHUNK,
            max_single_put_size=CHUNK, max_block_size=CHUNK))

    def _blob(self, name: str) -> Any:
        return self._client.get_blob_client(self.location.prefix + name)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        from azure.core.exceptions import AzureError

        try:
            return action()
        except (AzureError, OSError, ValueError) as exc:
            raise RemoteError(f"{what}: {_clean(exc)}") from None

    def get(self, name: str) -> tuple[bytes, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        def read() -> tuple[bytes, str] | None:
            try:
                stream = self._blob(name).download_blob(**QUICK)
            except ResourceNotFoundError:
                return None
            return stream.readall(), str(stream.properties.etag)

        return self._call(f"reading {name}", read)

    def download(self, name: str, into: BinaryIO) -> int:
        """Ranged reads of CHUNK bytes, CONCURRENCY at a time, of one version of the blob (its
        etag), all within DOWNLOAD_SECONDS; past that, the reads still under way are left to
        end on their own (they write to a descriptor of their own, never to `into` after
        this returns) and RemoteError says so."""
        from azure.core import MatchConditions

        what = f"downloading {name}"
        blob = self._blob(name)
        properties = self._call(what, lambda: blob.get_blob_properties(**QUICK))
        size, etag = int(properties.size or 0), properties.etag
        pending = list(range(0, size, CHUNK))[::-1]
        guard = threading.Lock()
        stop = threading.Event()
        errors: list[BaseException] = []
        target = _SharedDescriptor(into.fileno(), CONCURRENCY)

        def fetch() -> None:
            try:
                while not stop.is_set():
                    with guard:
                        if not pending:
                            return
                        offset = pending.pop()
                    data = blob.download_blob(offset, min(CHUNK, size - offset), etag=etag,
                                              match_condition=MatchConditions.IfNotModified,
                                              ).readall()
                    if not stop.is_set():
                        target.write(data, offset)
            except BaseException as exc:  # the first one is raised by download()
                errors.append(exc)
                stop.set()
            finally:
                target.release()

        workers = [threading.Thread(target=fetch, name=f"download-{n}", daemon=True)
                   for n in range(CONCURRENCY)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + DOWNLOAD_SECONDS
        for worker in workers:
            worker.join(max(deadline - time.monotonic(), 0.0))
        if any(worker.is_alive() for worker in workers):
            stop.set()
            raise RemoteError(f"{what}: not finished within {DOWNLOAD_SECONDS:.0f} s")
        if errors:
            self._call(what, lambda: _raise(errors[0]))
        return size

    def put(self, name: str, data: bytes | BinaryIO, *, if_absent: bool = False,
            if_version: str | None = None) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        conditions: dict[str, Any] = {}
        if if_version is not None:
            conditions = {"etag": if_version, "match_condition": MatchConditions.IfNotModified}

        def write() -> bool:
            try:
                self._with_container(lambda: self._blob(name).upload_blob(
                    data, overwrite=not if_absent, max_concurrency=CONCURRENCY, **conditions,
                    **(QUICK if isinstance(data, bytes) else {})))
            except (ResourceExistsError, ResourceModifiedError):
                return False
            return True

        return self._call(f"writing {name}", write)

    def _with_container(self, action: Callable[[], T]) -> T:
        """Run `action`, creating the container first if it does not exist yet."""
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        try:
            return action()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) != "ContainerNotFound":
                raise
            with contextlib.suppress(ResourceExistsError):
                self._client.create_container(**QUICK)
            return action()

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        def remove() -> None:
            with contextlib.suppress(ResourceNotFoundError):
                self._blob(name).delete_blob(**QUICK)

        self._call(f"deleting {name}", remove)

    def list(self, prefix: str) -> list[Blob]:
        from azure.core.exceptions import ResourceNotFoundError

        strip = len(self.location.prefix)

        def listing() -> list[Blob]:
            try:
                return [Blob(b.name[strip:], int(b.size or 0),
                             b.last_modified.timestamp() if b.last_modified else 0.0)
                        for b in self._client.list_blobs(
                            name_starts_with=self.location.prefix + prefix, **QUICK)]
            except ResourceNotFoundError:  # no container yet: nothing published
                return []

        return self._call(f"listing {prefix}", listing)

    def acquire(self, name: str, seconds: int, holder: Mapping[str, str]) -> str:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        blob = self._blob(name)

        def take() -> str:
            with contextlib.suppress(ResourceExistsError):  # made by an earlier build
                self._with_container(lambda: blob.upload_blob(b"", overwrite=False, **QUICK))
            try:
                lease = blob.acquire_lease(lease_duration=seconds, **QUICK)
            except HttpResponseError as exc:
                if getattr(exc, "status_code", None) != 409:
                    raise
                metadata = blob.get_blob_properties(**QUICK).metadata or {}
                raise LeaseTaken(metadata) from None
            blob.set_blob_metadata(dict(holder), lease=lease, **QUICK)
            return str(lease.id)

        return self._call(f"taking the lease on {name}", take)

    def renew(self, name: str, lease: str, holder: Mapping[str, str] | None = None) -> None:
        from azure.storage.blob import BlobLeaseClient

        def renew() -> None:
            blob = self._blob(name)
            BlobLeaseClient(blob, lease_id=lease).renew(**QUICK)
            if holder is not None:
                blob.set_blob_metadata(dict(holder), lease=lease, **QUICK)

        self._call(f"renewing the lease on {name}", renew)

    def break_lease(self, name: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        self._call(f"breaking the lease on {name}", lambda: BlobLeaseClient(
            self._blob(name)).break_lease(lease_break_period=0, **QUICK))

    def release(self, name: str, lease: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        self._call(f"releasing the lease on {name}",
                   lambda: BlobLeaseClient(self._blob(name), lease_id=lease).release(**QUICK))
