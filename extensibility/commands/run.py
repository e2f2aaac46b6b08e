"""`extensibility run [-- COMMAND]`: the container's entrypoint.

settings -> request -> Start -> environment (pipeline.py) -> hand-off (exec). cli.py calls
`serve` directly for a plain `run`, without argparse.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from extensibility.commands import Context
from extensibility.handoff import default_command, execute, prepare_handoff
from extensibility.pipeline import environment_for
from extensibility.request import LIB_PATH, log_request, resolve_request
from extensibility.settings import Settings
from extensibility.start import Start

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from extensibility.commands.parser import command_argument

    parser.description = ("Prepare the environment, then exec COMMAND in it (default: "
                          "azmlinfsrv --entry_script $AZUREML_ENTRY_SCRIPT, from the app root).\n"
                          "Configuration is read from environment variables (listed below).")
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    return serve(context, server_command(args.command, context.settings))


def server_command(given: Sequence[str] | None, settings: Settings) -> list[str]:
    """The command after `--`, or the prebuilt images' default server command."""
    command = list(given or [])
    if command[:1] == ["--"]:
        command = command[1:]
    return command or default_command(settings)


def open_start(context: Context, command: Sequence[str], *, serving: bool = False) -> Start:
    """Which request, logged; then the start's inputs, read once. `serving`: the server
    starts right after, so a build leaves byte-compiling to the background (compile.py)."""
    request = resolve_request(context.settings)
    log_request(request, context.log)
    deferred = serving and context.settings.compile == "auto"
    return Start(context.settings, context.env, command, request, compile_at_build=not deferred)


def log_packages(environment: Path, context: Context) -> None:
    """What the environment adds to the image, as the images' `pip freeze` showed it."""
    from extensibility.image import scan_distributions

    found = sorted(f"{name}=={version}" for folder in environment.glob("lib/python*/site-packages")
                   for name, version in scan_distributions(str(folder)))
    context.log.phase("packages", f"{len(found)} in {environment}: "
                      f"{', '.join(found) or 'none (the image has them all)'}")


def serve(context: Context, command: Sequence[str]) -> int:
    start = open_start(context, command, serving=True)
    ready = environment_for(start, context.log)
    environment = ready.path if ready is not None else None
    if ready is not None:
        log_packages(ready.path, context)
        from extensibility.compile import start_background

        settings = context.settings
        start_background(start.store, ready.path, context.log,
                         settings.app_root / settings.entry_script)
        if ready.claim is not None:
            from extensibility.remote.publish import hand_over

            hand_over(ready.claim, start.env, context.log)
    lib_path = start.request.path if start.request.kind == LIB_PATH else None
    if lib_path is not None:
        from extensibility.libpath import check_lib_path

        check_lib_path(start, lib_path, context.log)
    handoff = prepare_handoff(context.settings, command, context.env, environment, lib_path)
    context.log.outcome("exec", f"{handoff.describe()} (cwd {handoff.cwd})")
    execute(handoff, context.umask)
