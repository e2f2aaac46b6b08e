"""`extensibility plan [--json] [-- COMMAND]`: what a start would do, without installing."""

from __future__ import annotations

import argparse
import json
from typing import Any

from extensibility.commands import Context
from extensibility.commands.parser import command_argument
from extensibility.commands.run import open_start, server_command
from extensibility.errors import ExtensibilityError
from extensibility.log import Log
from extensibility.redact import redact_url
from extensibility.start import Start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from extensibility.resolve import Resolved


# `plan --json`: bumped when a field changes meaning or goes away (docs/cli.md)
SCHEMA_VERSION = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    """The plan of a start; a request `run` would refuse is reported with the refusal and
    exits with the same code (the checks are the ones `run` makes before installing)."""
    command = server_command(args.command, context.settings)
    start = open_start(context, command)
    resolved = None
    refusal: ExtensibilityError | None = None
    if start.request.installs:
        from extensibility.resolve import resolve

        try:
            resolved = resolve(start, context.log)
        except ExtensibilityError as error:
            refusal = error
    summary = _summary(start, resolved)
    summary["schema_version"] = SCHEMA_VERSION
    summary["state"] = "refused" if refusal else "hit" if summary["environment"] else \
        "remote hit" if str(summary["cache"]).startswith("remote hit") else \
        "miss" if resolved else "nothing to install"
    summary["refusal"] = None if refusal is None else {
        "exit_code": refusal.exit_code, "title": refusal.title,
        "message": redact_url(refusal.message), "fix": refusal.fix}
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
    else:
        _print(start, resolved, summary, key_document=not args.quiet)
    if refusal is not None:
        context.log.failure(refusal)
        return refusal.exit_code
    return 0


def _summary(start: Start, resolved: Resolved | None) -> dict[str, Any]:
    settings, request = start.settings, start.request
    hit = start.store.lookup(resolved.key) if resolved else None
    protection = resolved.protection if resolved else None
    return {
        "request": {"kind": request.kind, "path": str(request.path or ""),
                    "variable": request.variable, "ignored": list(request.ignored)},
        "installer": start.installer if resolved else None,
        "key": resolved.key if resolved else None,
        "cache": _cache_state(start, resolved),
        "environment": str(hit) if hit else None,
        "command": start.command,
        "protection": protection.describe() if protection else None,
        "held": protection.constraint_lines() if protection else [],
        "changes": _recorded_changes(start, resolved) if hit else None,
        "cwd": str(settings.app_root),
        "settings": dict(sorted(settings.sources.items())),
        "conda": resolved.conda.describe() if resolved and resolved.conda else None,
        "lock": resolved.lock.describe() if resolved and resolved.lock else None,
        "key_document": resolved.document if resolved else None,
    }


def _print(start: Start, resolved: Resolved | None, summary: dict[str, Any], *,
           key_document: bool) -> None:
    print(f"request:   {start.request.describe()}")
    if summary["refusal"]:
        print(f"refused:   exit {summary['refusal']['exit_code']}, "
              f"{summary['refusal']['title']} (see below)")
    for variable in start.request.ignored:
        print(f"ignored:   {variable} (lower precedence)")
    for line in summary["conda"] or ():
        print(f"conda:     {line}")
    for line in summary["lock"] or ():
        print(f"lock:      {line}")
    if resolved is not None:
        print(f"installer: {start.installer}")
        print(f"key:       {resolved.key}")
        print(f"cache:     {summary['cache']}")
        print(f"protect:   {summary['protection']}")
        if summary["held"]:
            print(f"held:      {', '.join(summary['held'])}")
        for change in summary["changes"] or ():
            print(f"change:    {change}")
    print(f"command:   {' '.join(start.command)}  (cwd {start.settings.app_root})")
    if resolved is not None and key_document:
        from extensibility.key import canonical_json

        print("key document:")
        print(canonical_json(resolved.document))


def _recorded_changes(start: Start, resolved: Resolved | None) -> list[str] | None:
    """What the existing environment adds or overrides (known once it is built)."""
    for entry in start.store.entries():
        if resolved and entry.key == resolved.key and entry.origin:
            return list(entry.origin.get("changes", []))
    return None


def _cache_state(start: Start, resolved: Resolved | None) -> str | None:
    if resolved is None:
        return None
    hit = start.store.lookup(resolved.key)
    if hit:
        return f"hit {hit}"
    from extensibility.remote import open_remote
    from extensibility.resolve import miss_reason

    log = Log(start.settings.log_format)
    remote = open_remote(start.settings, start.env, log)
    if remote is not None:
        from extensibility.key import canonical_json
        from extensibility.remote.manifest import mebibytes

        manifest = remote.manifest(resolved.key, canonical_json(resolved.document), log)
        if manifest is not None and manifest.usable:
            return (f"remote hit, would restore {mebibytes(manifest.size)} from "
                    f"{remote.backend.description} (built on {manifest.builder_host})")
    return (f"miss, would build in {start.settings.cache_dir}: "
            f"{miss_reason(start, resolved)}")
