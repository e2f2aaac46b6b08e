"""The warm path's shortcut: find the environment of an unchanged request without parsing it.

After a start has computed the full key, it leaves a note under `CACHE/warm/`, named by a
digest of the raw inputs its `Start` read (the request file's bytes, the image's package
listing, the interpreter, installer, installer configuration, protection and server module).
The note lists what else the key depended on, with the digests taken when the key was
computed: included files, local artifacts, local conda channels, `${VAR}` values.
A later start recomputes the digest, re-checks those, and on a match goes straight to the
environment: no requirement parsing, no `packaging` import, no resolver.

Both the digest and the note come from values read once, before any build: if a file
changes while a build runs, the note describes the old content, so the next start with the
new content misses and rebuilds. Any mismatch just means the full path runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from extensibility import safety
from extensibility.fingerprint import fingerprint_path, fingerprint_wheelhouse, sha256_file
from extensibility.inputs import read_regular
from extensibility.log import Log
from extensibility.redact import secret_digest
from extensibility.start import Start
from extensibility.store import write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from extensibility.resolve import Resolved

SCHEMA = 2
MAX_NOTE = 16 << 20
_NOTE_PARTS = ("variables", "files", "wheelhouses", "local", "channels")


def warm_digest(start: Start) -> str:
    """Everything the full key depends on that is not re-checked through the note."""
    settings = start.settings
    document = {
        "schema": SCHEMA,
        "request": str(start.request_path),
        "content": start.request_digest,
        "interpreter": start.image.identity(),
        "image": start.image.listing,
        "installer": start.installer,
        "installer_settings": start.installer_settings,
        "protect": settings.protect,
        "policy": settings.policy(),
        "wheelhouse": settings.wheelhouse,
        "server_module": start.server_module,
        "conda": [settings.conda_strategy, settings.conda_channels],
    }
    text = json.dumps(document, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def note_path(start: Start) -> Path:
    return start.store.warm_note_path(warm_digest(start))


def find(start: Start, path: Path, log: Log) -> Path | None:
    """The environment, if the request is unchanged since a start that wrote the note at
    `path` (`note_path(start)`)."""
    try:
        safety.check([path])  # the folder is checked with the store's (lookup below)
        note = json.loads(read_regular(path, MAX_NOTE))
    except (OSError, ValueError):
        return None
    if not isinstance(note, dict) or not still_valid(note, start.env):
        return None
    key = note.get("key")
    if not isinstance(key, str) or "/" in key or key.startswith("."):
        return None  # not a key this cache could hold
    store = start.store
    if store.lookup(key) is None:
        return None
    try:
        store.hold(key)
    except OSError:
        return None  # the full path reports an unwritable cache with its own clear message
    found = store.lookup(key)  # again, under the in-use lock: a clean-up may have run
    if found is None:
        return None
    store.touch(key)
    log.phase("key", f"{key} (request unchanged, installer {start.installer}): hit")
    return found


def note_for(resolved: Resolved) -> dict[str, object]:
    """What the key depended on besides the digest, as read when the key was computed."""
    spec = resolved.spec
    top = str(spec.files[0]) if spec.files else None
    return {
        "key": resolved.key,
        "files": {path: digest for path, digest in spec.digests.items() if path != top},
        "wheelhouses": dict(spec.local_inputs),
        "local": dict(spec.local_files),
        "variables": {name: None if value is None else secret_digest(value)
                      for name, value in spec.variables.items()},
        "channels": dict(resolved.conda.local.state) if resolved.conda else {},
    }


def remember(resolved: Resolved, path: Path) -> None:
    """Leave the note at `path` for the next start (best effort: a read-only cache just
    stays slow)."""
    try:
        path.parent.mkdir(mode=safety.folder_mode(), parents=True, exist_ok=True)
        write_atomic(path, json.dumps(note_for(resolved), sort_keys=True))
    except OSError:
        pass


def still_valid(note: Mapping[str, object], env: Mapping[str, str]) -> bool:
    """Whether everything the note lists is as it was when its key was computed."""
    parts = [part for part in (note.get(name) for name in _NOTE_PARTS) if isinstance(part, dict)]
    if len(parts) != len(_NOTE_PARTS):
        return False  # a note of another schema
    variables, files, wheelhouses, local, channels = parts
    try:
        if channels:
            from extensibility.conda.channels import unchanged

            if not unchanged(channels):
                return False
        return (
            all((None if env.get(name) is None else secret_digest(env[name])) == digest
                for name, digest in variables.items())
            and all(sha256_file(Path(p)) == h for p, h in files.items())
            and all(fingerprint_wheelhouse(Path(p)) == f for p, f in wheelhouses.items())
            and all(fingerprint_path(Path(p)) == f for p, f in local.items())
        )
    except (OSError, AttributeError, ValueError):
        return False
