"""`extensibility prepare`: build the environment now and exit (image build, init container);
with `--target DIR`, install the request into a folder for AZUREML_EXTRA_PYTHON_LIB_PATH."""

from __future__ import annotations

import argparse
from pathlib import Path

from extensibility.commands import Context
from extensibility.commands.parser import command_argument, target_arguments
from extensibility.commands.run import open_start, server_command
from extensibility.errors import UsageError
from extensibility.pipeline import environment_for
from extensibility.request import LIB_PATH, resolve_request
from extensibility.start import Start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Build the environment for the server COMMAND (default: azmlinfsrv),"
                          " without starting it. The command matters: its package is what is "
                          "protected.")
    parser.add_argument("--target", type=Path, metavar="DIR",
                        help="instead: install the request into DIR, for "
                        "AZUREML_EXTRA_PYTHON_LIB_PATH (see the target options)")
    parser.add_argument("--publish", action="store_true",
                        help="also publish the environment to EXTENSIBILITY_REMOTE_CACHE when "
                        "it is not there yet (a build this command claimed is always published)")
    parser.add_argument("-r", "--requirement", type=Path, metavar="FILE",
                        help="with --target: this file instead of the deployment's request")
    target_arguments(parser)
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    if args.target is not None:
        return _into_folder(args, context)
    start = open_start(context, server_command(args.command, context.settings))
    environment = environment_for(start, context.log)
    if start.request.kind == LIB_PATH and start.request.path is not None:
        from extensibility.libpath import check_lib_path

        check_lib_path(start, start.request.path, context.log)  # remembered for the start
    context.log.phase("prepare", f"ready: {environment}" if environment else "nothing to prepare")
    if environment is not None:
        _publish(start, environment, args.publish, context)
    return 0


def _publish(start: Start, environment: Path, asked: bool, context: Context) -> None:
    """A build claimed under the remote lease is published here, in the foreground (others
    wait for it); `--publish` also publishes an environment the remote does not have yet.
    A failure of the store is a warning: the environment is ready on this node anyway."""
    from extensibility.remote.commands import publish_environment, require_remote

    remote = start.remote
    claim = remote.pending if remote is not None else None
    if claim is None and not asked:
        return
    publish_environment(remote or require_remote(context), start.store, environment.name,
                        context.log, claim, strict=False)


def _into_folder(args: argparse.Namespace, context: Context) -> int:
    from extensibility.commands.wheelhouse import target_of
    from extensibility.target import prepare_target, read_request

    requirements = args.requirement or resolve_request(context.settings).path
    if requirements is None:
        raise UsageError("nothing to install: give -r FILE or set "
                         "AZUREML_EXTRA_REQUIREMENTS_TXT or a conda file variable")
    source = Path(requirements).absolute()
    target = target_of(args)
    spec = read_request(source, context.env, target, context.settings, context.log)
    prepare_target(source, spec, args.target.absolute(), target, context.env, context.log,
                   context.settings.install_timeout)
    context.log.phase("prepare", f"ready: {args.target} (for AZUREML_EXTRA_PYTHON_LIB_PATH)")
    return 0
