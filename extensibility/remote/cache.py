"""The remote cache's part of a start: find, restore, wait for, or claim a build; publish.

    manifest there?  -> download, verify, unpack, relocate, publish locally (marker last)
    lease free?      -> take it: this node builds, and publishes after (the lease is
                        renewed until the manifest is written)
    lease taken      -> say who holds it every 10 s and poll for the manifest; when the
                        holder dies its lease expires and one waiter takes it over; a lease
                        whose holder record shows no renewal for STALE_SECONDS (an infinite
                        lease, a holder that renews no more) is broken and taken over; after
                        EXTENSIBILITY_REMOTE_WAIT, build here

Any failure of the store is one warning and a local build: the store is not asked again
during this start, so a dead endpoint costs one bounded timeout, never the start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable

from extensibility.errors import RemoteUnavailable
from extensibility.faults import pause
from extensibility.log import Log, escaped
from extensibility.remote.backend import Backend, LeaseTaken, RemoteError
from extensibility.remote.manifest import (
    BadManifest,
    Manifest,
    lock_name,
    manifest_name,
    mebibytes,
    parse,
)
from extensibility.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

LEASE_SECONDS = 15  # the shortest lease Azure grants: a dead builder is replaced soon
# the holder writes its record again at every renewal (every LEASE_SECONDS / 3): a record
# a waiter sees unchanged for this long, on its own clock, is a lease nobody renews
STALE_SECONDS = 2 * LEASE_SECONDS
MAX_HELD_SECONDS = 7 * 86400  # a "since" further back (or ahead) is not believed
POLL_SECONDS = 1.0
SAY_EVERY_SECONDS = 10.0


class Lease:
    """A held lease, renewed by a thread until it is released or handed to another process."""

    def __init__(self, backend: Backend, key: str, lease_id: str, log: Log,
                 since: str | None = None) -> None:
        self.backend, self.key, self.id, self.log = backend, key, lease_id, log
        self.since = since or str(int(time.time()))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{key}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        warned = False
        while not self._stop.wait(LEASE_SECONDS / 3):
            try:
                self.backend.renew(lock_name(self.key), self.id,
                                   {**holder_record(self.since), "renewed": str(time.time())})
            except RemoteError as exc:  # tried again at the next tick: a blip is not a loss
                if not warned:
                    self.log.warning("remote", f"the build lease on {self.key} could not be "
                                     f"renewed ({exc}); another node may build it too")
                    warned = True

    def stop(self) -> None:
        """Stop renewing without releasing (the publisher child takes over)."""
        self._stop.set()
        self._thread.join()

    def release(self) -> None:
        self.stop()
        with contextlib.suppress(RemoteError):  # else it expires within LEASE_SECONDS
            self.backend.release(lock_name(self.key), self.id)


class Claim:
    """What `obtain` ended with: restored, or a build here (with the lease, or without).

    A claim with a lease is this node's to publish: `build.ensure_environment` returns it,
    and the command publishes it (remote/publish.py) or gives the lease back."""

    def __init__(self, remote: RemoteCache, restored: bool = False, lease: Lease | None = None,
                 replace: str | None = None) -> None:
        self.remote = remote
        self.restored = restored
        self.lease = lease  # this node builds and publishes
        self.replace = replace  # the etag of a bad manifest this node may overwrite

    @property
    def to_publish(self) -> bool:
        return self.lease is not None

    def give_up(self) -> None:
        """The build failed: another node may build it now."""
        if self.lease is not None:
            self.lease.release()


def holder_record(since: str | None = None) -> dict[str, str]:
    return {"host": socket.gethostname(), "pid": str(os.getpid()),
            "since": since or str(int(time.time()))}


def describe_holder(holder: dict[str, str]) -> str:
    """Who holds a lease, from the record it wrote (read from the store: escaped, and a
    duration that cannot be right is not repeated)."""
    try:
        held = time.time() - float(holder["since"])
    except (KeyError, ValueError):
        held = -1.0
    since = f", for {held:.0f} s" if 0 <= held <= MAX_HELD_SECONDS else \
        ", for an unknown time"
    return (f"{escaped(holder.get('host', 'another node')[:100])} "
            f"(pid {escaped(holder.get('pid', '?')[:20])}{since})")


class RemoteCache:
    def __init__(self, backend: Backend, wait: float, compile_timeout: float = 1800.0) -> None:
        self.backend = backend
        self.wait = wait
        self.compile_timeout = compile_timeout  # a publisher's wait for the byte-compile
        self.down: str | None = None  # why the store is not used any more in this process

    def attempt(self, log: Log, action: Callable[[], T]) -> T | None:
        """`action`'s result, or None after one warning when the store fails."""
        if self.down is not None:
            return None
        try:
            return action()
        except RemoteError as exc:
            self.fail(exc, log)
            return None

    def fail(self, exc: RemoteError, log: Log) -> None:
        """The store failed: one warning, and it is not asked again by this process."""
        self.down = str(exc)
        log.warning("remote", f"{self.backend.description} is not usable ({exc}); "
                    "going on without the remote cache")

    def unavailable(self, exc: RemoteError | None = None) -> RemoteUnavailable:
        """The error of a command that cannot go on without the store (exit 90)."""
        return RemoteUnavailable(f"{self.backend.description}: {exc or self.down}",
                                 fix="check the URL, the credentials (SAS token, "
                                 "AZURE_STORAGE_CONNECTION_STRING or managed identity) and the "
                                 "network; `extensibility doctor` tests them")

    def manifest(self, key: str, document: str, log: Log) -> Manifest | None:
        """The published manifest for `key` (None: none, unusable, or the store is down)."""
        found = self.attempt(log, lambda: self.backend.get(manifest_name(key)))
        if found is None:
            return None
        try:
            return parse(found[0], found[1], key, document)
        except BadManifest as exc:
            log.warning("remote", f"the published manifest of {key} is not used: {exc}")
            return Manifest({"key": key}, found[1], usable=False)  # to replace, never to use

    def obtain(self, store: Store, key: str, document: str, interpreter: str,
               log: Log) -> Claim:
        """Restore `key` into the store, or claim its build (see the module's docstring).
        Called under the local build lock, after `store.begin(key)`."""
        deadline = time.monotonic() + self.wait
        said = 0.0
        replace: str | None = None
        seen: tuple[tuple[str, str], ...] | None = None  # the holder's record, as last seen
        seen_since = 0.0
        broken = False
        while True:
            manifest = self.manifest(key, document, log)
            if manifest is not None and manifest.etag != replace:
                if manifest.usable and self.restore(store, manifest, document, interpreter, log):
                    return Claim(self, restored=True)
                replace = manifest.etag  # bad: never used, replaced by this node's build
            if self.down is not None:
                return Claim(self)
            try:
                record = holder_record()
                lease_id = self.backend.acquire(lock_name(key), LEASE_SECONDS, record)
            except LeaseTaken as taken:
                if replace is not None:
                    return Claim(self)  # the published one is bad and another node is on it
                now = time.monotonic()
                shown = tuple(sorted(taken.holder.items()))
                if shown != seen:  # renewed (or a new holder): progress
                    seen, seen_since = shown, now
                elif now - seen_since >= STALE_SECONDS and not broken:
                    log.warning("remote", f"the build lease on {key} of "
                                f"{describe_holder(taken.holder)} was not renewed for "
                                f"{now - seen_since:.0f} s: it is stale; breaking it")
                    broken = True
                    self.attempt(log, lambda: self.backend.break_lease(lock_name(key)))
                    continue
                if now >= deadline:
                    log.warning("remote", f"waited {self.wait:.0f} s for "
                                f"{describe_holder(taken.holder)} to publish {key} "
                                "(EXTENSIBILITY_REMOTE_WAIT); building here")
                    return Claim(self)
                if now - said >= SAY_EVERY_SECONDS:
                    log.phase("remote", f"{key} is being built by {describe_holder(taken.holder)}"
                              f"; waiting for it to publish (at most {deadline - now:.0f} s more)")
                    said = now
                time.sleep(POLL_SECONDS)
                continue
            except RemoteError as exc:
                self.fail(exc, log)
                return Claim(self)
            if replace is None and self.attempt(
                    log, lambda: self.backend.get(manifest_name(key))) is not None:
                # published between our look and our lease: restore that instead
                with contextlib.suppress(RemoteError):
                    self.backend.release(lock_name(key), lease_id)
                continue
            log.phase("remote", f"no published environment for {key}: building it here, "
                      f"then publishing it to {self.backend.description}")
            return Claim(self, lease=Lease(self.backend, key, lease_id, log, record["since"]),
                         replace=replace)

    def restore(self, store: Store, manifest: Manifest, document: str, interpreter: str,
                log: Log) -> bool:
        """Restore a published manifest into the store (False: not usable; said)."""
        from extensibility.remote.restore import restore

        return restore(lambda handle: self.attempt(
            log, lambda: self.backend.download(manifest.archive, handle)),
            self.backend.description, store, manifest, document, interpreter, log)

    def publish(self, store: Store, key: str, log: Log, *, replace: str | None = None) -> bool:
        """Upload the environment `key` (complete and compiled): archive first, manifest
        last. Returns whether a manifest was written (False: one was there already)."""
        from extensibility.remote.archive import pack

        environment = store.lookup(key)
        if environment is None:
            raise RemoteError(f"{key} is not a complete environment in {store.root}")
        from extensibility.compile import is_compiled

        if not is_compiled(environment):
            raise RemoteError(f"{key} is not byte-compiled yet: only compiled environments "
                              "are published")
        started = time.monotonic()
        with tempfile.TemporaryFile(dir=store.root) as handle:
            packed = pack(environment, handle)
            handle.seek(0)
            manifest = Manifest.describe(key, store.key_document(key), str(environment), packed,
                                         store.origin(key) or {})
            self.backend.put(manifest.archive, handle)
        pause(os.environ, "manifest", log)  # tests: an upload cut short here
        written = self.backend.put(manifest_name(key), manifest.to_bytes(),
                                   if_absent=replace is None, if_version=replace)
        seconds = time.monotonic() - started
        if written:
            store.journal(event="published", key=key, size=packed.size, sha256=packed.sha256)
            log.phase("remote", f"published {key} to {self.backend.description} "
                      f"({mebibytes(packed.size)}, {packed.files} files) in {seconds:.1f} s")
        else:
            log.phase("remote", f"{key} was already published by another node; kept theirs")
        return written
