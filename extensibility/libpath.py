"""AZUREML_EXTRA_PYTHON_LIB_PATH gets the protection an installed request gets, before exec.

The folder (made with `pip install --target`, as the platform's docs say) goes first on
PYTHONPATH, so a package in it shadows the image's. Before the hand-off:
1. every distribution in the folder is checked against what is held, as a request's pin is
   (`Held.refusing`): all conflicts at once, exit 95, the folder and each package named;
   `off` makes them warnings. A folder holding the server's package at another version
   replaces the server: nothing of the old server's closure is held, the probe decides;
2. the server's boot probe (boot.py) runs with the folder on PYTHONPATH: a server that
   cannot start fails the start (exit 95) in every mode, naming the folder's packages in
   the error.
The verdict is cached by the folder's content (names, sizes and times of its files), the
image, the protection mode and the server module (a note under CACHE/libpath/), so a restart
with the same folder reads one note instead of probing. Any cache trouble just means the
check runs again: a lib-path start never fails for the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from extensibility import safety
from extensibility.errors import CheckFailed, RequestConflict, UnsafeCache
from extensibility.inputs import read_regular
from extensibility.log import Log
from extensibility.settings import ProtectMode
from extensibility.start import Start

SCHEMA = 1
VARIABLE = "AZUREML_EXTRA_PYTHON_LIB_PATH"
_MAX_NOTE = 1 << 20


def check_lib_path(start: Start, folder: Path, log: Log) -> None:
    """Refuse (exit 95) a lib-path folder that conflicts with what is held or keeps the
    server from starting; a folder already checked in this state costs one note read."""
    note = _note_path(start, folder)
    warnings = _remembered(start, note)
    if warnings is not None:
        for warning in warnings:
            log.warning("libpath", warning)
        log.phase("libpath", f"{folder}: checked before (unchanged)")
        return
    warnings = _conflicts(start, folder, log)
    _probe(start, folder, log)
    _remember(note, folder, warnings)


def fingerprint_folder(folder: Path) -> str:
    """The folder's content by the name, size and modification time of every file: stat
    calls only, through scandir (about 10 us a file: 0.1 s for a folder of 9,500 files,
    against a second or more for the probe it saves). Links are not followed."""
    digest = hashlib.sha256()
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            with os.scandir(os.path.join(folder, relative)) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            digest.update(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _note_path(start: Start, folder: Path) -> Path:
    document = {
        "schema": SCHEMA,
        "folder": str(folder),
        "content": fingerprint_folder(folder),
        "interpreter": start.image.identity(),
        "image": start.image.listing,
        "protect": start.settings.protect,
        "server_module": start.server_module,
    }
    name = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
    return start.store.libpath_note_path(name)


def _remembered(start: Start, note: Path) -> list[str] | None:
    """The warnings of a passed check of this exact state, or None (not checked yet)."""
    try:
        safety.check([start.store.root, note.parent, note])
        found = json.loads(read_regular(note, _MAX_NOTE))
    except (OSError, ValueError, UnsafeCache):
        return None
    warnings = found.get("warnings") if isinstance(found, dict) else None
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        return None
    return warnings


def _remember(note: Path, folder: Path, warnings: list[str]) -> None:
    from extensibility.store import write_atomic

    try:
        safety.check([note.parent.parent, note.parent])
        note.parent.mkdir(mode=safety.folder_mode(), parents=True, exist_ok=True)
        write_atomic(note, json.dumps({"folder": str(folder), "warnings": warnings}))
    except (OSError, UnsafeCache):
        pass  # a read-only cache: the next start checks again


def _folder_distributions(folder: Path) -> dict[str, str]:
    """Canonical name -> version of what the folder holds."""
    from importlib import metadata

    from extensibility.image import canonical_name

    found: dict[str, str] = {}
    for dist in metadata.distributions(path=[str(folder)]):
        found.setdefault(canonical_name((dist.metadata.get_all("Name") or [""])[0]),
                         dist.version)
    return found


def _conflicts(start: Start, folder: Path, log: Log) -> list[str]:
    """Step 1: the folder's packages against what is held; the warnings of `off` mode."""
    from extensibility.protection import resolve_protection

    mode = start.settings.protect
    protection = resolve_protection(mode if mode != ProtectMode.OFF else ProtectMode.SERVER,
                                    start.server_module, start.image)
    held, server = protection.held, protection.server
    found = _folder_distributions(folder)
    if server is not None and server in found and found[server] != held[server].version:
        log.phase("libpath", f"{folder} replaces {server} {held[server].version} with "
                  f"{found[server]}: nothing of its closure is held; the boot check decides")
        return []
    conflicts = [(name, version, held[name].refusing(version))
                 for name, version in sorted(found.items()) if name in held]
    conflicts = [conflict for conflict in conflicts if conflict[2]]
    if not conflicts:
        log.phase("libpath", f"{folder}: {len(found)} packages, none against what the server "
                  "needs")
        return []
    if mode == ProtectMode.OFF:  # what `server` mode would refuse, as warnings
        warnings = [f"{folder}: {name} {version}: {'; '.join(reasons)}"
                    for name, version, reasons in conflicts]
        for warning in warnings:
            log.warning("libpath", warning)
        return warnings
    lines = [f"{VARIABLE} folder {folder} holds {len(conflicts)} package"
             f"{'s' if len(conflicts) > 1 else ''} against what the scoring server needs "
             f"(EXTENSIBILITY_PROTECT={mode}):"]
    for name, version, reasons in conflicts:
        lines.append(f"  {folder}: {name} {version}")
        lines += [f"    {reason}" for reason in reasons]
    names = ", ".join(name for name, *_ in conflicts)
    raise RequestConflict("\n".join(lines), fix=(
        f"remove {names} from the folder (the image provides it), or rebuild the folder with "
        f"versions inside the ranges shown (`pip install --target {folder} ...`); or, at your "
        "own risk, set EXTENSIBILITY_PROTECT=off (conflicts are then warnings, but a server "
        "that cannot start still fails)"))


def _probe(start: Start, folder: Path, log: Log) -> None:
    """Step 2: the server's app is created with the folder first on PYTHONPATH."""
    module = start.server_module
    if module is None:
        return
    from extensibility.boot import describe, describe_failure
    from extensibility.consistency import boot_error, start_boot_probe

    existing = start.env.get("PYTHONPATH")
    env = {**start.env, "PYTHONPATH": f"{folder}{os.pathsep}{existing}" if existing
           else str(folder)}
    error = boot_error(start_boot_probe(Path(start.image.python), module, env),
                       start.settings.install_timeout)
    if error is None:
        log.phase("libpath", f"{folder}: {describe(module)}")
        return
    culprits = _packages_in(error, folder)
    named = f" (from the folder: {', '.join(culprits)})" if culprits else ""
    raise CheckFailed(
        f"the scoring server cannot start with {VARIABLE} folder {folder} first on "
        f"PYTHONPATH{named}: {describe_failure(module)}:\n{error}",
        fix=f"a package in {folder} breaks a module the server loads at boot (named above): "
        "remove it from the folder, or rebuild the folder with the version the image has. "
        "This fails the start whatever EXTENSIBILITY_PROTECT says")


def _packages_in(error: str, folder: Path) -> list[str]:
    """The folder's distributions whose files the probe's traceback passes through."""
    prefix = f"{folder}{os.sep}"
    tops = {part.split(os.sep)[0] for part in error.split(prefix)[1:]}
    if not tops:
        return []
    from importlib import metadata

    named: list[str] = []
    for dist in metadata.distributions(path=[str(folder)]):
        files = {Path(str(f)).parts[0] for f in dist.files or () if Path(str(f)).parts}
        if files & tops:
            named.append(f"{dist.metadata['Name']} {dist.version}")
    return sorted(set(named))
