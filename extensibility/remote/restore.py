"""Restore a published environment into the local store: download, verify, unpack,
relocate, then publish locally with the same marker-last rule as a build.

The checksum is verified before a single file is unpacked; anything wrong (size, sha256, an
unsafe or damaged archive, a link that is not this image's interpreter, any failure while
unpacking) is one warning: what was unpacked is removed and the key is left to a local build,
which replaces the bad manifest."""

from __future__ import annotations

import tempfile
import time

from extensibility.log import Log, escaped
from extensibility.remote.archive import UnsafeArchive, checksum, unpack
from extensibility.remote.manifest import Manifest, mebibytes
from extensibility.remote.relocate import NotRelocatable, relocate
from extensibility.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    Download = Callable[[BinaryIO], "int | None"]


def restore(download: Download, source: str, store: Store, manifest: Manifest, document: str,
            interpreter: str, log: Log) -> bool:
    """Whether the environment was restored (False: not usable, or the store failed; the
    reason was logged). `download` writes the manifest's archive into a file (None: the
    store failed, said); `source` names the store in the environment's record."""
    key, started = manifest.key, time.monotonic()
    log.phase("remote", f"restoring {key} ({mebibytes(manifest.size)}, built on "
              f"{escaped(manifest.builder_host)})")
    with tempfile.TemporaryFile(dir=store.root) as handle:
        if download(handle) is None:
            return False
        sha256, size = checksum(handle)
        if (sha256, size) != (manifest.sha256, manifest.size):
            log.warning("remote", f"the archive of {key} does not match its manifest "
                        f"(sha256 {sha256[:12]}…, {size} bytes; expected "
                        f"{manifest.sha256[:12]}…, {manifest.size}): not used")
            return False
        downloaded = time.monotonic() - started
        root = store.env_dir(key)
        try:
            unpack(handle, root, max_files=manifest.files, max_bytes=manifest.unpacked)
            relocate(root, manifest.root, manifest.external_links, interpreter,
                     records=store.meta_dir(key))
        except (UnsafeArchive, NotRelocatable) as exc:
            store.discard(key)
            log.warning("remote", f"the archive of {key} is refused: {exc}")
            return False
        except Exception as exc:  # any other failure too: a local build, never an exit
            store.discard(key)
            log.warning("remote", f"the archive of {key} could not be restored "
                        f"({type(exc).__name__}: {escaped(str(exc))}); building here")
            return False
        except BaseException:
            store.discard(key)
            raise
    if store.damage(key) is not None:
        log.warning("remote", f"the restored {key} does not work here ({store.damage(key)})")
        store.discard(key)
        return False
    origin = store.origin(key) or {}  # the builder's record
    origin["restored"] = {"from": source, "sha256": manifest.sha256,
                          "builder": manifest.fields.get("builder"),
                          "seconds": round(time.monotonic() - started, 3),
                          "created": time.time()}
    store.publish(key, document, origin, compiled=True)
    store.journal(event="restored", key=key, sha256=manifest.sha256)
    log.phase("remote", f"restored {key} in {time.monotonic() - started:.1f} s "
              f"(download and check {downloaded:.1f} s)")
    return True
