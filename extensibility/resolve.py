"""The cold path's first half: read the request in full and compute its key.

request file -> spec (requirements parser, a lock file's selection, or a conda file's
decision and its PyPI part)
-> policy -> offline wheelhouse -> key document -> key. Never installs; `plan` stops here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extensibility.conda.prefix import CondaLayout
from extensibility.errors import RequestNotSupported
from extensibility.key import differences, key_document, key_of
from extensibility.log import Log
from extensibility.offline import offline, wheelhouse_folder
from extensibility.policy import apply_policy
from extensibility.protection import Protection, check_request, resolve_protection
from extensibility.request import CONDA
from extensibility.requirements import RequirementsSpec, parse_requirements
from extensibility.start import Start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from extensibility.conda.request import CondaRequest
    from extensibility.lockfile.read import LockSelection


@dataclass(frozen=True)
class Resolved:
    """The request read in full: what gets installed and the key it is cached under."""

    spec: RequirementsSpec
    conda: CondaRequest | None  # for a conda file: how it is met
    document: dict[str, Any]
    key: str
    protection: Protection  # what the request may not change (checked: no pin against it)
    lock: LockSelection | None = None  # for a lock file: what it selects here


def resolve(start: Start, log: Log) -> Resolved:
    """Parse the bytes `start` read, apply the policy and offline mode, compute the key."""
    settings, path = start.settings, start.request_path
    assert start.request_data is not None
    conda = None
    lock: LockSelection | None = None
    if start.request.kind == CONDA:
        from extensibility.conda.request import read_conda_request

        conda, spec = read_conda_request(settings, path, start.request_data, start.env,
                                         image=start.image.distributions)
        for line in conda.describe():
            log.phase("conda", line)
    elif start.request.is_lock:
        from extensibility.lockfile.read import read_lock

        spec, lock = read_lock(path, start.request_data, start.image.distributions,
                               wheelhouse_folder(settings))
        for line in lock.describe():
            log.phase("lock", line)
    else:
        spec = parse_requirements(path, start.env, start.request_data)
    spec = apply_policy(settings, spec, start.env)
    if start.installer == "uv":
        _uv_can_install(spec)
    wheels = wheelhouse_folder(settings)
    if wheels is not None:
        spec = offline(spec, wheels)
    protection = resolve_protection(settings.protect, start.server_module, start.image,
                                    spec.requirements)
    if conda is None or conda.layout != CondaLayout.PYTHON:  # that layout has a Python of its own
        check_request(protection, spec)
    document = key_document(start, spec, conda.key_part() if conda else None,
                            lock.key_part() if lock else None)
    key = key_of(document)
    hit = start.store.lookup(key) is not None
    log.phase("key", f"{key} ({len(spec.requirements)} requirements, "
              f"{len(spec.constraints)} constraints, installer {start.installer}): "
              f"{'hit' if hit else 'miss'}")
    return Resolved(spec, conda, document, key, protection, lock)


def _uv_can_install(spec: RequirementsSpec) -> None:
    """uv has no per-requirement options: say so at the user's line, before any install."""
    for requirement in spec.requirements:
        if requirement.extra_options:
            raise RequestNotSupported(
                f"{requirement.origin}: per-requirement options (--config-settings, "
                "--global-option) are not supported by uv",
                fix="set EXTENSIBILITY_INSTALLER=pip for this request, or drop the options")


def miss_reason(start: Start, resolved: Resolved) -> str:
    """Why there is no environment: compares with the last one built for the same file."""
    store = start.store
    damage = store.damaged(resolved.key)
    if damage is not None:
        return f"environment {resolved.key} is damaged ({damage}): rebuilding"
    previous = [e for e in store.entries()
                if e.complete and e.document and e.origin
                and e.origin.get("request_file") == str(start.request_path)]
    if not previous:
        return "no environment was built for this request before"
    latest = max(previous, key=lambda e: e.last_access or 0.0)
    assert latest.document is not None
    changed = differences(latest.document, resolved.document)
    return f"changed since environment {latest.key}: {'; '.join(changed)}"
