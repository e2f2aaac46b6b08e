"""`extensibility run | plan | prepare`: `main(argv) -> int`, one exit code per failure."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extensibility import __version__
from extensibility.errors import ExtensibilityError, UsageError
from extensibility.handoff import default_command, execute, plan_handoff
from extensibility.log import Log
from extensibility.request import (
    CONDA,
    LIB_PATH,
    REQUIREMENTS,
    Request,
    log_request,
    resolve_request,
)
from extensibility.settings import Settings, parse_duration, parse_size
from extensibility.warm import remember, warm_start

if TYPE_CHECKING:
    from extensibility.download import Target
    from extensibility.environment import EnvironmentPlan

INTERNAL_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extensibility",
        description="Install a deployment's extra Python packages into a cached overlay "
        "environment over this image's Python, then start the scoring server in it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="prepare the environment and exec the server (the container entrypoint)",
        description="Prepare the environment, then exec COMMAND in it (default: azmlinfsrv "
        "--entry_script $AZUREML_ENTRY_SCRIPT, from the app root).")
    _command_argument(run)
    plan = commands.add_parser("plan", help="show what a start would do, without installing")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    _command_argument(plan)
    prepare = commands.add_parser(
        "prepare", help="build the environment and exit (image build time, init containers)",
        description="Build the environment for the server COMMAND (default: azmlinfsrv), "
        "without starting it. The command matters: its package is what is protected.")
    prepare.add_argument("--target", type=Path, metavar="DIR",
                         help="instead: install the request into DIR, for "
                         "AZUREML_EXTRA_PYTHON_LIB_PATH (see the target options)")
    prepare.add_argument("-r", "--requirement", type=Path, metavar="FILE",
                         help="with --target: this file instead of the deployment's request")
    _target_arguments(prepare)
    _command_argument(prepare)
    wheelhouse = commands.add_parser(
        "wheelhouse", help="download every wheel a request needs into a folder, with a "
        "manifest, for EXTENSIBILITY_WHEELHOUSE (offline deployments)")
    wheelhouse.add_argument("-r", "--requirement", type=Path, required=True, metavar="FILE")
    wheelhouse.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    wheelhouse.add_argument("--build-sdists", action="store_true",
                            help="build wheels of source-only packages (this interpreter only)")
    _target_arguments(wheelhouse)
    doctor = commands.add_parser(
        "doctor", help="check the interpreter, installers, cache folder, server command and "
        "request; print a fix for each problem (exit 1 if any)")
    _command_argument(doctor)
    listing = commands.add_parser("ls", help="list the cached environments")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    clean = commands.add_parser(
        "gc", help="remove unused environments (least recently used first)",
        description="Remove leftovers of failed builds, then environments unused for longer "
        "than --max-age, then least-recently-used ones until the cache fits --max-size. "
        "Never removes an environment in use, being built, or used within --min-idle.")
    clean.add_argument("--max-age", type=_duration, help="e.g. 30d, 12h, 3600 (default: "
                       "EXTENSIBILITY_GC_MAX_AGE)")
    clean.add_argument("--max-size", type=_size, help="e.g. 20G, 500M (default: "
                       "EXTENSIBILITY_GC_MAX_SIZE)")
    clean.add_argument("--min-idle", type=_duration, help="default: EXTENSIBILITY_GC_MIN_IDLE")
    clean.add_argument("--dry-run", action="store_true", help="say what would be removed")
    return parser


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "target interpreter", "defaults: the interpreter running this command (the image's, "
        "when run inside it)")
    group.add_argument("--python-version", metavar="X.Y")
    group.add_argument("--platform", action="append", default=[], metavar="TAG",
                       help="e.g. manylinux_2_28_x86_64 (repeatable)")
    group.add_argument("--abi", metavar="TAG", help="e.g. cp311")
    group.add_argument("--implementation", metavar="NAME", help="e.g. cp")


def _target(args: argparse.Namespace) -> Target:
    from extensibility.download import Target

    return Target(args.python_version, tuple(args.platform), args.abi, args.implementation)


def _command_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the server command and its arguments, after `--` (default: "
                        "azmlinfsrv --entry_script ...); give `plan` and `prepare` the one "
                        "`run` will get: the server's package is part of the key")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30d, 12h, 90)") from None


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 20G, 500M)") from None


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    started = time.monotonic()
    env = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(argv)
    log = Log("text", started=started)  # until the settings are read and valid
    try:
        settings = Settings.from_environ(env)
        log.fmt = settings.log_format
        if args.action == "plan":
            return _plan(settings, env, log, _command(args, settings), as_json=args.json)
        if args.action == "doctor":
            from extensibility.doctor import diagnose, report

            findings = diagnose(settings, env, _command(args, settings))
            print(report(findings))
            return 0 if all(f.ok for f in findings) else 1
        if args.action == "wheelhouse":
            from extensibility.download import build_wheelhouse, read_request

            source = args.requirement.absolute()
            spec = read_request(source, env, _target(args), settings, log)
            manifest = build_wheelhouse(source, spec, args.output.absolute(), _target(args),
                                        args.build_sdists, env, log, settings.install_timeout)
            log.phase("wheelhouse", f"ready: {args.output} (manifest {manifest.name})")
            return 0
        if args.action == "prepare" and args.target is not None:
            from extensibility.download import prepare_target, read_request

            requirements = args.requirement or resolve_request(settings).path
            if requirements is None:
                raise UsageError("nothing to install: give -r FILE or set "
                                 "AZUREML_EXTRA_REQUIREMENTS_TXT or a conda file variable")
            source = Path(requirements).absolute()
            spec = read_request(source, env, _target(args), settings, log)
            prepare_target(source, spec, args.target.absolute(), _target(args), env, log,
                           settings.install_timeout)
            log.phase("prepare", f"ready: {args.target} (for AZUREML_EXTRA_PYTHON_LIB_PATH)")
            return 0
        if args.action == "ls":
            return _list(settings, as_json=args.json)
        if args.action == "gc":
            return _collect(settings, args, log)
        command = _command(args, settings)
        request = resolve_request(settings)
        log_request(request, log)
        overlay = _environment(settings, request, env, command, log)
        if args.action == "prepare":
            log.phase("prepare", f"ready: {overlay}" if overlay else "nothing to prepare")
            return 0
        lib_path = request.path if request.kind == LIB_PATH else None
        handoff = plan_handoff(settings, command, env, overlay, lib_path)
        log.phase("exec", f"{handoff.describe()} (cwd {handoff.cwd})")
        execute(handoff)
    except ExtensibilityError as error:
        log.failure(error)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug of ours: say so plainly, keep the traceback for the report
        sys.stderr.write(traceback.format_exc())
        sys.stderr.write("extensibility: internal error (the traceback above is for a bug "
                         "report)\n")
        return INTERNAL_ERROR


def _environment(settings: Settings, request: Request, env: Mapping[str, str],
                 command: list[str], log: Log) -> Path | None:
    """The overlay to run in (None: the image's Python as it is). An unchanged request takes
    the warm shortcut; anything else computes the full key, and builds on a miss."""
    if request.kind not in (REQUIREMENTS, CONDA):
        return None
    found = warm_start(settings, request, env, command, log)
    if found is not None:
        return found
    from extensibility.environment import ensure_environment, plan_environment

    plan = plan_environment(settings, request, env, log, command)
    overlay = ensure_environment(settings, plan, env, log)
    remember(settings, env, plan)
    return overlay


def _command(args: argparse.Namespace, settings: Settings) -> list[str]:
    command = list(getattr(args, "command", None) or [])
    if command[:1] == ["--"]:
        command = command[1:]
    return command or default_command(settings)


def _plan(settings: Settings, env: Mapping[str, str], log: Log, command: list[str], *,
          as_json: bool) -> int:
    from extensibility.environment import plan_environment

    request = resolve_request(settings)
    log_request(request, log)
    plan = plan_environment(settings, request, env, log, command)
    protection = None
    if plan.image is not None:
        from extensibility.protection import resolve_protection

        protection = resolve_protection(settings.protect, plan.server_module, plan.image)
    summary: dict[str, Any] = {
        "request": {"kind": plan.request.kind, "path": str(plan.request.path or ""),
                    "variable": plan.request.variable, "ignored": list(plan.request.ignored)},
        "installer": plan.installer,
        "key": plan.key,
        "cache": _cache_state(settings, plan),
        "environment": str(plan.hit) if plan.hit else None,
        "command": command,
        "protection": protection.describe() if protection else None,
        "held": protection.constraint_lines() if protection else [],
        "changes": _recorded_changes(settings, plan),
        "cwd": str(settings.app_root),
        "settings": {name: source for name, source in sorted(settings.sources.items())},
        "conda": plan.conda.describe() if plan.conda else None,
        "key_document": plan.document,
    }
    if as_json:
        print(json.dumps(summary, indent=1, sort_keys=True))
        return 0
    print(f"request:   {plan.request.describe()}")
    for variable in plan.request.ignored:
        print(f"ignored:   {variable} (lower precedence)")
    for line in summary["conda"] or ():
        print(f"conda:     {line}")
    if plan.key:
        print(f"installer: {plan.installer}")
        print(f"key:       {plan.key}")
        print(f"cache:     {summary['cache']}")
        print(f"protect:   {summary['protection']}")
        if summary["held"]:
            print(f"held:      {', '.join(summary['held'])}")
        for change in summary["changes"] or ():
            print(f"change:    {change}")
    print(f"command:   {' '.join(command)}  (cwd {settings.app_root})")
    if plan.document is not None:
        from extensibility.key import canonical_json

        print("key document:")
        print(canonical_json(plan.document))
    return 0


def _recorded_changes(settings: Settings, plan: EnvironmentPlan) -> list[str] | None:
    """What the existing environment adds or overrides (known once it is built)."""
    if plan.hit is None or plan.key is None:
        return None
    from extensibility.store import Store

    for entry in Store(settings.cache_dir).entries():
        if entry.key == plan.key and entry.origin:
            return list(entry.origin.get("changes", []))
    return None


def _cache_state(settings: Settings, plan: EnvironmentPlan) -> str | None:
    from extensibility.environment import miss_reason

    if plan.key is None:
        return None
    if plan.hit:
        return f"hit {plan.hit}"
    return f"miss, would build in {settings.cache_dir}: {miss_reason(settings, plan)}"


def _list(settings: Settings, *, as_json: bool) -> int:
    from extensibility.cleanup import status
    from extensibility.store import Store

    store = Store(settings.cache_dir)
    rows: list[dict[str, Any]] = [{"key": e.key, "size": e.size(), "last_use": e.last_access,
             "status": status(store, e), "origin": (e.origin or {}).get("request_file"),
             "installer": (e.origin or {}).get("installer"), "path": str(e.path)}
            for e in store.entries()]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'KEY':16}  {'SIZE':>9}  {'LAST USE':19}  {'STATUS':10}  ORIGIN")
    for row in rows:
        used = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["last_use"]))
                if row["last_use"] else "-")
        print(f"{row['key']:16}  {row['size'] / 2**20:7.1f}Mi  {used:19}  {row['status']:10}  "
              f"{row['origin'] or '-'}")
    return 0


def _collect(settings: Settings, args: argparse.Namespace, log: Log) -> int:
    from extensibility.cleanup import collect
    from extensibility.store import Store

    removed, skipped = collect(
        Store(settings.cache_dir),
        max_age=args.max_age if args.max_age is not None else settings.gc_max_age,
        max_size=args.max_size if args.max_size is not None else settings.gc_max_size,
        min_idle=args.min_idle if args.min_idle is not None else settings.gc_min_idle,
        dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for removal in removed:
        log.phase("gc", f"{verb} {removal.key} ({removal.size / 2**20:.1f} MiB): "
                  f"{removal.reason}")
    for skip in skipped:
        log.phase("gc", f"kept {skip.key}: {skip.reason}")
    total = sum(r.size for r in removed)
    log.phase("gc", f"{verb} {len(removed)} environments, {total / 2**20:.1f} MiB")
    return 0


def console_main() -> None:
    sys.exit(main())
