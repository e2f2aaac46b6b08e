"""The warm path's shortcut: find the environment of an unchanged request without parsing it.

After a start has computed the full key, it leaves a note under `CACHE/warm/`, named by a
digest of the raw inputs (the request file's bytes, the image's package listing, the
interpreter, installer, installer configuration, protection and server module). The note
lists what else the key depended on: included files, local artifacts, `${VAR}` values.
A later start recomputes the digest, re-checks those, and on a match goes straight to the
environment: no requirement parsing, no `packaging` import, no resolver.
Any mismatch just means the full path runs; the note can never select a wrong environment
as long as everything the key depends on is in the digest or the note.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extensibility.fingerprint import fingerprint_path, fingerprint_wheelhouse, sha256_file
from extensibility.image import Image, current_image
from extensibility.installer_config import installer_settings
from extensibility.installers.choice import choose_installer
from extensibility.log import Log
from extensibility.request import CONDA, REQUIREMENTS, Request
from extensibility.server_command import server_module
from extensibility.settings import Settings
from extensibility.store import Store

if TYPE_CHECKING:
    from extensibility.environment import EnvironmentPlan

SCHEMA = 1


def _digest(settings: Settings, request: Request, env: Mapping[str, str],
            module: str | None, image: Image, installer: str) -> str:
    assert request.path is not None
    # every setting the full key depends on must be here too (or re-checked by the note)
    document = {
        "schema": SCHEMA,
        "request": str(request.path),
        "content": sha256_file(request.path),
        "interpreter": image.identity(),
        "image": image.distribution_listing(),
        "installer": installer,
        "installer_settings": installer_settings(installer, env),
        "protect": settings.protect,
        "policy": settings.policy(),
        "wheelhouse": settings.wheelhouse,
        "server_module": module,
        "conda": [settings.conda_strategy, settings.conda_channels],
    }
    text = json.dumps(document, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _note_path(settings: Settings, digest: str) -> Path:
    return settings.cache_dir / "warm" / f"{digest}.json"


def warm_start(settings: Settings, request: Request, env: Mapping[str, str],
               command: Sequence[str], log: Log) -> Path | None:
    """The environment, if the request is unchanged since a start that wrote a note."""
    if request.kind not in (REQUIREMENTS, CONDA):
        return None
    installer, _ = choose_installer(settings.installer)
    module = server_module(command, env.get("PATH", os.defpath), settings.app_root)
    digest = _digest(settings, request, env, module, current_image(), installer)
    try:
        note = json.loads(_note_path(settings, digest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _still_valid(note, env):
        return None
    key = str(note["key"])
    store = Store(settings.cache_dir)
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
    log.phase("key", f"{key} (request unchanged, installer {installer}): hit")
    return found


def remember(settings: Settings, env: Mapping[str, str], plan: EnvironmentPlan) -> None:
    """Leave the note for the next start (best effort: a read-only cache just stays slow)."""
    spec, image, installer = plan.spec, plan.image, plan.installer
    assert spec is not None and image is not None and installer is not None
    note: dict[str, Any] = {
        "key": plan.key,
        "files": {str(p): sha256_file(p) for p in (*spec.files[1:], *_channel_files(plan))},
        "wheelhouses": dict(spec.local_inputs),
        "local": dict(spec.local_files),
        "variables": {name: _secret_digest(value) for name, value in spec.variables.items()},
    }
    path = _note_path(settings, _digest(settings, plan.request, env, plan.server_module, image,
                                        installer))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(note, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass


def _channel_files(plan: EnvironmentPlan) -> list[Path]:
    """A local conda channel's index: a package added there changes the key."""
    channels = plan.conda.channels if plan.conda else ()
    return [repodata for channel in channels if channel.startswith("file://")
            for repodata in sorted(Path(channel[len("file://"):]).glob("*/repodata.json"))]


def _secret_digest(value: str | None) -> str | None:
    """${VAR} values may be tokens: the note keeps only their hash."""
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


def _still_valid(note: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    try:
        return (
            all(_secret_digest(env.get(name)) == digest
                for name, digest in note["variables"].items())
            and all(sha256_file(Path(p)) == h for p, h in note["files"].items())
            and all(fingerprint_wheelhouse(Path(p)) == f for p, f in note["wheelhouses"].items())
            and all(fingerprint_path(Path(p)) == f for p, f in note["local"].items())
        )
    except (OSError, KeyError, AttributeError):
        return False
