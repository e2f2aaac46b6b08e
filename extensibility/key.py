"""The cache key: sha256 of a canonical, readable JSON document describing the request.

The document is stored beside the environment, so a rebuild can say what changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from extensibility.redact import redact_url
from extensibility.requirements import IndexOptions, Requirement, RequirementsSpec
from extensibility.start import Start

SCHEMA = 1
KEY_LENGTH = 16  # hex digits; short keeps script shebangs under the kernel's limit

def key_document(start: Start, spec: RequirementsSpec,
                 conda: Mapping[str, Any] | None = None,
                 lock: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document the key hashes: the request as parsed (`spec`, and for a conda file its
    key part; for a lock file its own key part replaces the request: the lock's content) and
    what `start` read of the image, installer and settings."""
    document = {
        "schema": SCHEMA,
        "installer": start.installer,
        "protection": {"mode": start.settings.protect, "server_module": start.server_module},
        "policy": start.settings.policy(),
        "interpreter": start.image.identity(),
        "image": dict(start.image.listing),
        "request": {
            "requirements": [_requirement_entry(r) for r in spec.requirements],
            "constraints": [_requirement_entry(r) for r in spec.constraints],
            "options": _options_entry(spec.options),
            "local_inputs": dict(sorted(spec.local_inputs.items())),
        },
        "installer_settings": start.installer_settings,
    }
    if lock is not None:
        document["request"] = dict(lock)
    if conda is not None:  # absent for a requirements file: their keys stay as they were
        document["conda"] = dict(conda)
    return document


def canonical_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False)


def key_of(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()[:KEY_LENGTH]


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Top-level parts of two key documents that differ, with a short detail where useful."""
    changed: list[str] = []
    for part in sorted(set(old) | set(new)):
        if old.get(part) == new.get(part):
            continue
        if part == "image" and isinstance(old.get(part), dict) and isinstance(new.get(part), dict):
            before = {p for ps in old[part].values() for p in ps}
            after = {p for ps in new[part].values() for p in ps}
            detail = [f"-{p}" for p in sorted(before - after)] + [f"+{p}" for p in
                                                                 sorted(after - before)]
            changed.append(f"image packages ({', '.join(detail[:6]) or 'site folders'}"
                           f"{', ...' if len(detail) > 6 else ''})")
        else:
            changed.append(part.replace("_", " "))
    return changed


def _requirement_entry(requirement: Requirement) -> str:
    entry = ("-e " if requirement.editable else "") + requirement.key_text
    for digest in requirement.hashes:
        entry += f" --hash={digest}"
    for option in requirement.extra_options:
        entry += f" {option}"
    return entry


def _options_entry(options: IndexOptions) -> dict[str, Any]:
    return {
        "index_url": redact_url(options.index_url) if options.index_url else None,
        "extra_index_urls": [redact_url(u) for u in options.extra_index_urls],
        "find_links": [redact_url(u) for u in options.find_links],
        "no_index": options.no_index,
        "pre": options.pre,
        "require_hashes": options.require_hashes,
        "prefer_binary": options.prefer_binary,
        "only_binary": list(options.only_binary),
        "no_binary": list(options.no_binary),
        "trusted_hosts": list(options.trusted_hosts),
    }
