"""Moving one environment between the local store and the remote cache, for the commands
(`prepare`, `push`, `pull`): publish unless published, restore unless here. Errors are the
commands' exit codes (90 the store cannot be used, 91 nothing published)."""

from __future__ import annotations

from extensibility.errors import NotPublished, RemoteUnavailable
from extensibility.log import Log
from extensibility.remote.backend import RemoteError
from extensibility.remote.cache import Claim, RemoteCache
from extensibility.remote.manifest import manifest_name
from extensibility.store import Store


def published(remote: RemoteCache, key: str) -> bool:
    try:
        return remote.backend.get(manifest_name(key)) is not None
    except RemoteError as exc:
        raise remote.unavailable(exc) from None


def publish_environment(remote: RemoteCache, store: Store, key: str, log: Log,
                        claim: Claim | None = None, *, strict: bool = True) -> bool:
    """Publish `key` unless it is published already (`claim`: this process built it under
    the lease, and may replace a bad manifest). `strict`: a store failure is an error (exit
    90), else a warning. Returns whether a manifest was written."""
    from extensibility.remote.publish import publish_now

    try:
        if remote.down is not None:
            raise RemoteError(remote.down)
        if claim is None and published(remote, key):
            log.phase("remote", f"{key} is published already")
            return False
        return publish_now(remote, store, key, log, lease=claim.lease if claim else None,
                           replace=claim.replace if claim else None)
    except (RemoteError, RemoteUnavailable) as exc:
        if claim is not None:
            claim.give_up()
        error = exc if isinstance(exc, RemoteUnavailable) else remote.unavailable(exc)
        if strict:
            raise error from None
        log.warning("remote", f"not published: {error.message}")
        return False


def pull(remote: RemoteCache, store: Store, key: str, document: str, interpreter: str,
         log: Log, lock_timeout: float) -> None:
    """Restore `key` from the remote unless the store has it; raises NotPublished when the
    remote has no usable one, RemoteUnavailable when it cannot be asked."""
    if store.lookup(key) is not None:
        log.phase("remote", f"{key} is here already: {store.env_dir(key)}")
        return
    store.hold(key)
    with store.lock(key, lock_timeout, log):
        if store.lookup(key) is not None:
            return
        store.begin(key)
        manifest = remote.manifest(key, document, log)
        if manifest is not None and manifest.usable and \
                remote.restore(store, manifest, document, interpreter, log):
            return
    if remote.down is not None:
        raise remote.unavailable()
    raise NotPublished(f"{remote.backend.description} has no usable environment for {key}",
                       fix="build and publish it: `extensibility prepare --publish`")
