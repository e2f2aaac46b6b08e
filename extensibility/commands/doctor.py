"""`extensibility doctor [-- COMMAND]`: check the set-up a start depends on, and say how to
fix each fault. Each check asks the module a start would ask (the store for the cache's
safety rule, the request parsers for the request), so doctor and a start cannot disagree."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata

from extensibility.commands import Context
from extensibility.commands.parser import command_argument
from extensibility.commands.run import server_command
from extensibility.errors import ExtensibilityError
from extensibility.image import current_image
from extensibility.installers.choice import choose_installer, find_uv
from extensibility.process import run_captured
from extensibility.protection import resolve_protection
from extensibility.request import resolve_request
from extensibility.server_command import find_program, server_module
from extensibility.settings import ProtectMode, Settings
from extensibility.store import Store

LOW_SPACE = 1 << 30  # a typical set of ML wheels needs more than this


@dataclass(frozen=True)
class Finding:
    item: str
    ok: bool
    detail: str
    fix: str | None = None


# `doctor --json`: bumped when a field changes meaning or goes away (docs/cli.md)
SCHEMA_VERSION = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    command = server_command(args.command, context.settings)
    findings = diagnose(context.settings, context.env, command)
    ok = all(f.ok for f in findings)
    if args.json:
        import json

        print(json.dumps({"schema_version": SCHEMA_VERSION, "ok": ok, "findings": [
            {"item": f.item, "ok": f.ok, "detail": f.detail, "fix": f.fix} for f in findings]},
            indent=1))
    else:
        print(report(findings))
    return 0 if ok else 1


def diagnose(settings: Settings, env: Mapping[str, str], command: Sequence[str]) -> list[Finding]:
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("interpreter", _interpreter), ("pip", _pip), ("uv", _uv),
        ("installer", lambda: _installer(settings)), ("cache", lambda: _cache(settings)),
        ("server", lambda: _server(settings, env, command)),
        ("request", lambda: _request(settings, env, command)),
    ]
    if settings.remote_cache:
        checks.append(("remote cache", lambda: _remote(settings, env)))
    findings = []
    for item, check in checks:
        try:
            findings.append(check())
        except ExtensibilityError as error:  # the same failure a start would stop on
            findings.append(Finding(item, False, error.message, error.fix))
    return findings


def _interpreter() -> Finding:
    image = current_image()
    kind = "venv" if sys.prefix != sys.base_prefix else (
        "conda env" if os.path.isdir(os.path.join(sys.prefix, "conda-meta")) else "system install")
    return Finding("interpreter", True,
                   f"{sys.executable} (Python {image.version}, {kind}); "
                   f"{len(image.distributions)} packages in {', '.join(image.site_dirs)}")


def _pip() -> Finding:
    try:
        return Finding("pip", True, f"pip {metadata.version('pip')}")
    except metadata.PackageNotFoundError:
        return Finding("pip", False, "pip is not installed in the image's Python",
                       "install pip into the image (it is a dependency of this package)")


def _uv() -> Finding:
    uv = find_uv()
    if uv is None:
        return Finding("uv", True, "not installed: pip will be used (install the `uv` extra "
                       "for faster cold starts)")
    version = run_captured([uv, "--version"], timeout=30)
    if version.returncode != 0 or version.timed_out:
        return Finding("uv", False, f"{uv} does not run: {version.tail or 'no output'}",
                       "reinstall uv, or set EXTENSIBILITY_INSTALLER=pip")
    return Finding("uv", True, f"{version.output.strip()} at {uv}")


def _installer(settings: Settings) -> Finding:
    name, _ = choose_installer(settings.installer)
    return Finding("installer", True, f"{name} (EXTENSIBILITY_INSTALLER={settings.installer})")


def _cache(settings: Settings) -> Finding:
    folder = settings.cache_dir
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if existing != folder and not os.access(existing, os.W_OK | os.X_OK):
        return Finding("cache", False, f"{folder} does not exist and {existing} is not writable",
                       "create the folder for this user, or set EXTENSIBILITY_CACHE_DIR")
    store = Store(folder)
    store.check_safe()  # the start's own rule: UnsafeCache becomes this check's finding
    entries = store.entries()
    for entry in entries:
        store.check_safe(entry.path)
    if existing == folder and not os.access(folder, os.W_OK | os.X_OK):
        return Finding("cache", False, f"{folder} is not writable by uid {os.getuid()}",
                       f"chown {os.getuid()} {folder}, or set EXTENSIBILITY_CACHE_DIR")
    free = shutil.disk_usage(existing).free
    incomplete = sum(not e.complete for e in entries)
    detail = (f"{folder}: {len(entries)} environments ({incomplete} incomplete), "
              f"{free / 2**30:.1f} GiB free")
    if free < LOW_SPACE:
        return Finding("cache", False, detail, "free space, or run `extensibility gc "
                       "--max-size ...`, or use a larger volume")
    return Finding("cache", True, detail)


def _remote(settings: Settings, env: Mapping[str, str]) -> Finding:
    from extensibility.log import Log
    from extensibility.remote import open_remote
    from extensibility.remote.backend import RemoteError
    from extensibility.remote.inventory import probe

    remote = open_remote(settings, env, Log(settings.log_format, stream=io.StringIO()))
    if remote is None:
        return Finding("remote cache", False, "EXTENSIBILITY_REMOTE_CACHE is set but "
                       "azure-storage-blob or zstandard is not installed",
                       "pip install 'inference-extensibility[remote]'")
    try:
        detail = probe(remote)
    except RemoteError as exc:
        return Finding("remote cache", False, f"{remote.backend.description}: {exc}",
                       "check the URL, the credentials (SAS token, "
                       "AZURE_STORAGE_CONNECTION_STRING or managed identity), the SAS "
                       "permissions (read, add, create, write, delete, list) and the network")
    return Finding("remote cache", True, detail)


def _server(settings: Settings, env: Mapping[str, str], command: Sequence[str]) -> Finding:
    path = env.get("PATH", os.defpath)
    program = find_program(command[0], path, settings.app_root)
    if program is None:
        return Finding("server", False, f"{command[0]!r} is not on PATH nor next to "
                       f"{sys.executable}", "install azureml-inference-server-http into the "
                       "image, or give the server command after `--`")
    module = server_module(command, path, settings.app_root)
    if module is None:
        return Finding("server", True, f"{' '.join(command)} -> {program} (not a Python console "
                       "script: `server` protection holds nothing for it)")
    protection = resolve_protection(ProtectMode.SERVER, module, current_image())
    return Finding("server", True, f"{' '.join(command)} -> {program}, module {module} of "
                   f"{protection.server or 'an unknown package'}")


def _request(settings: Settings, env: Mapping[str, str], command: Sequence[str]) -> Finding:
    """The checks a start makes before it installs (parse, policy, conflicts with what the
    server needs): a request `run` would refuse fails here with the same message."""
    import io

    from extensibility.log import Log
    from extensibility.resolve import resolve
    from extensibility.start import Start

    request = resolve_request(settings)
    if not request.installs:
        return Finding("request", True, request.describe())
    resolved = resolve(Start(settings, env, command, request), Log(stream=io.StringIO()))
    detail = f"{request.describe()}: {len(resolved.spec.requirements)} requirements read"
    if resolved.conda is not None:
        from extensibility.conda.prefix import rattler_available

        rattler = "py-rattler installed" if rattler_available() else "no py-rattler"
        detail += f"; {resolved.conda.describe()[0]}; {rattler}"
    return Finding("request", True, f"{detail}; {resolved.protection.describe()}")


def report(findings: Sequence[Finding]) -> str:
    lines = []
    for finding in findings:
        lines.append(f"{'ok  ' if finding.ok else 'FAIL'}  {finding.item}: {finding.detail}")
        if finding.fix and not finding.ok:
            lines.append(f"      fix: {finding.fix}")
    return "\n".join(lines)
