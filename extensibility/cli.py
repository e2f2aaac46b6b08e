"""`extensibility run | plan | prepare`: `main(argv) -> int`, one exit code per failure."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from extensibility import __version__
from extensibility.environment import (
    EnvironmentPlan,
    ensure_environment,
    miss_reason,
    plan_environment,
)
from extensibility.errors import ExtensibilityError
from extensibility.handoff import default_command, execute, plan_handoff
from extensibility.key import canonical_json
from extensibility.log import Log
from extensibility.settings import Settings

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
    run.add_argument("command", nargs=argparse.REMAINDER,
                     help="server command and arguments, after `--`")
    plan = commands.add_parser("plan", help="show what a start would do, without installing")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    commands.add_parser("prepare", help="build the environment and exit (image build time, "
                        "init containers)")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    started = time.monotonic()
    env = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(argv)
    log = Log("text", started=started)  # until the settings are read and valid
    try:
        settings = Settings.from_environ(env)
        log.fmt = settings.log_format
        if args.action == "plan":
            return _plan(settings, env, log, as_json=args.json)
        plan = plan_environment(settings, env, log)
        overlay = ensure_environment(settings, plan, env, log) if plan.key else None
        if args.action == "prepare":
            log.phase("prepare", f"ready: {overlay}" if overlay else "nothing to prepare")
            return 0
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        handoff = plan_handoff(settings, command or None, env, overlay, plan.lib_path)
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


def _plan(settings: Settings, env: Mapping[str, str], log: Log, *, as_json: bool) -> int:
    plan = plan_environment(settings, env, log)
    command = default_command(settings)
    summary: dict[str, Any] = {
        "request": {"kind": plan.request.kind, "path": str(plan.request.path or ""),
                    "variable": plan.request.variable, "ignored": list(plan.request.ignored)},
        "installer": plan.installer,
        "key": plan.key,
        "cache": _cache_state(settings, plan),
        "environment": str(plan.hit) if plan.hit else None,
        "default_command": command,
        "cwd": str(settings.app_root),
        "settings": {name: source for name, source in sorted(settings.sources.items())},
        "key_document": plan.document,
    }
    if as_json:
        print(json.dumps(summary, indent=1, sort_keys=True))
        return 0
    print(f"request:   {plan.request.describe()}")
    for variable in plan.request.ignored:
        print(f"ignored:   {variable} (lower precedence)")
    if plan.key:
        print(f"installer: {plan.installer}")
        print(f"key:       {plan.key}")
        print(f"cache:     {summary['cache']}")
    print(f"command:   {' '.join(command)}  (cwd {settings.app_root})")
    if plan.document is not None:
        print("key document:")
        print(canonical_json(plan.document))
    return 0


def _cache_state(settings: Settings, plan: EnvironmentPlan) -> str | None:
    if plan.key is None:
        return None
    if plan.hit:
        return f"hit {plan.hit}"
    return f"miss, would build in {settings.cache_dir}: {miss_reason(settings, plan)}"


def console_main() -> None:
    sys.exit(main())
