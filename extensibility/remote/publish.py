"""Publishing a build to the remote cache, without making the server wait.

`run` hands the build's lease to a child (`hand_over`) and execs the server at once; the
child holds the environment's in-use lock, renews the lease, waits for the byte-compile
(EXTENSIBILITY_INSTALL_TIMEOUT at most: then it gives the lease back), uploads the archive
and then the manifest, and releases the lease. If it dies, no manifest is written and the
lease expires: a waiting node takes the build over. `prepare` and `push` publish in the
foreground (`publish_now`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from extensibility.log import Log
from extensibility.remote.backend import RemoteError
from extensibility.remote.cache import Claim, Lease, RemoteCache
from extensibility.store import Store

HANDOVER = "_EXTENSIBILITY_PUBLISH"  # the child's orders: key, lease id, etag to replace, since


def hand_over(claim: Claim, env: Mapping[str, str], log: Log) -> None:
    """Start the child that publishes the build `claim` made under its lease (`env`: the
    start's environment, which names the store and its credentials)."""
    lease = claim.lease
    if lease is None:
        return
    import subprocess

    orders = json.dumps({"key": lease.key, "lease": lease.id, "replace": claim.replace,
                         "since": lease.since})
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "extensibility.remote.publish"],
            env={**env, HANDOVER: orders}, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_low_priority, close_fds=True)
    except OSError as exc:  # the server still starts; another node may build and publish
        lease.release()
        log.warning("remote", f"{lease.key} is not published: the publisher could not be "
                    f"started ({exc})")
        return
    lease.stop()  # the child renews it from now on
    log.phase("remote", f"publishing {lease.key} in the background (pid {child.pid}) once it "
              "is byte-compiled; the server does not wait for it")


def _low_priority() -> None:
    # nice, not SCHED_IDLE: the lease must still be renewed on a busy node
    os.nice(10)


def publish_now(remote: RemoteCache, store: Store, key: str, log: Log, *,
                lease: Lease | None = None, replace: str | None = None) -> bool:
    """Compile if needed, upload, release the lease. Returns whether a manifest was written;
    raises RemoteError when the store fails."""
    from extensibility.compile import CompileTimeout, compile_now

    try:
        try:
            compile_now(store, store.env_dir(key), remote.compile_timeout)
        except CompileTimeout as exc:  # the lease is released below: another node may build
            raise RemoteError(str(exc)) from None
        return remote.publish(store, key, log, replace=replace)
    finally:
        if lease is not None:
            lease.release()


def main() -> int:
    """The child of `hand_over`."""
    from extensibility.remote import open_remote
    from extensibility.settings import Settings

    orders = json.loads(os.environ.pop(HANDOVER))
    settings = Settings.from_environ(os.environ)
    log = Log(settings.log_format)
    remote = open_remote(settings, os.environ, log)
    if remote is None:
        return 1
    store = Store(settings.cache_dir)
    key = orders["key"]
    store.hold(key)  # in use while it is read: no clean-up removes it under the upload
    lease = Lease(remote.backend, key, orders["lease"], log, orders.get("since"))
    try:
        publish_now(remote, store, key, log, lease=lease, replace=orders["replace"])
    except RemoteError as exc:
        log.warning("remote", f"{key} was not published: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
