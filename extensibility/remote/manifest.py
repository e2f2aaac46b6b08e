"""The manifest: the one small blob that says a published environment is there and what it is.

Written after its archive, so a manifest always names an archive that was fully uploaded.
Read with suspicion: a manifest is used only if its key and key document are this start's
own, and its archive only if the bytes downloaded have the manifest's size and sha256.
"""

from __future__ import annotations

import json
import re

from extensibility.log import escaped

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from extensibility.remote.archive import Packed

SCHEMA = 1
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
MAX_MANIFEST = 1 << 20


class BadManifest(Exception):
    pass


def mebibytes(size: int) -> str:
    """A size for a log line: `12.3 MiB` (`0.04 MiB` for a small one)."""
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**20:.2f} MiB"


def manifest_name(key: str) -> str:
    return f"envs/{key}/manifest.json"


def archive_name(key: str, sha256: str) -> str:
    return f"envs/{key}/{sha256}.tar.zst"


def lock_name(key: str) -> str:
    return f"locks/{key}"


class Manifest:
    """Written by `describe`, read by `parse`: the schema lives here and nowhere else."""

    def __init__(self, fields: dict[str, Any], etag: str | None = None, *,
                 usable: bool = True) -> None:
        self.fields = fields
        self.etag = etag  # the blob's version, to replace exactly this one if it is bad
        self.usable = usable  # False: it failed the checks; kept only to be replaced

    @classmethod
    def describe(cls, key: str, document: Any, root: str, packed: Packed,
                 origin: dict[str, Any]) -> Manifest:
        """The manifest of an environment just packed (`origin`: its build record)."""
        import os
        import platform
        import socket
        import time

        from extensibility import __version__

        return cls({
            "schema": SCHEMA,
            "key": key,
            "document": document,
            "archive": {"sha256": packed.sha256, "size": packed.size, "files": packed.files,
                        "unpacked_bytes": packed.unpacked},
            "root": root,
            "external_links": packed.external_links,
            "builder": {"host": socket.gethostname(), "pid": os.getpid()},
            "installer": origin.get("installer"),
            "installed": origin.get("installed", []),
            "versions": {"extensibility": __version__, "python": platform.python_version()},
            "created": time.time(),
        })

    @property
    def key(self) -> str:
        return str(self.fields["key"])

    @property
    def archive(self) -> str:
        return archive_name(self.key, self.sha256)

    @property
    def sha256(self) -> str:
        return str(self.fields["archive"]["sha256"])

    @property
    def size(self) -> int:
        return int(self.fields["archive"]["size"])

    @property
    def files(self) -> int:
        return int(self.fields["archive"]["files"])

    @property
    def unpacked(self) -> int:
        return int(self.fields["archive"]["unpacked_bytes"])

    @property
    def builder_host(self) -> str:
        builder = self.fields.get("builder")
        return str(builder.get("host", "?")) if isinstance(builder, dict) else "?"

    @property
    def root(self) -> str:
        return str(self.fields["root"])

    @property
    def external_links(self) -> dict[str, str]:
        return dict(self.fields["external_links"])

    def to_bytes(self) -> bytes:
        return json.dumps(self.fields, indent=1, sort_keys=True).encode()


def parse(data: bytes, etag: str | None, key: str, document: str) -> Manifest:
    """The manifest for `key`, checked against this start's own key document."""
    try:
        if len(data) > MAX_MANIFEST:
            raise BadManifest("larger than any manifest we write")
        fields = json.loads(data)
        manifest = Manifest(fields, etag)
        if not isinstance(fields, dict) or fields.get("schema") != SCHEMA:
            raise BadManifest(f"not a schema {SCHEMA} manifest")
        if manifest.key != key:
            raise BadManifest(f"it is the manifest of {escaped(str(manifest.key))}")
        if json.dumps(fields.get("document"), sort_keys=True) != \
                json.dumps(json.loads(document), sort_keys=True):
            raise BadManifest("its key document is not this request's")
        if not _SHA256_RE.fullmatch(manifest.sha256):
            raise BadManifest("its archive checksum is not a sha256")
        if min(manifest.size, manifest.files, manifest.unpacked) < 0:
            raise BadManifest("negative sizes")
        if not manifest.root.startswith("/"):
            raise BadManifest("its root is not an absolute path")
        links = manifest.external_links
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in links.items()):
            raise BadManifest("malformed links")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadManifest(f"unreadable ({type(exc).__name__}: {escaped(str(exc))})") from None
    return manifest
