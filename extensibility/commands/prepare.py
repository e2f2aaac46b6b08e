"""`extensibility prepare`: build the environment now and exit (image build, init container);
with `--target DIR`, install the request into a folder for AZUREML_EXTRA_PYTHON_LIB_PATH."""

from __future__ import annotations

import argparse
from pathlib import Path

from extensibility.commands import Context
from extensibility.commands.parser import command_argument, target_arguments
from extensibility.commands.run import open_start, server_command
from extensibility.errors import UsageError
from extensibility.pipeline import Ready, environment_for
from extensibility.request import LIB_PATH, resolve_request
from extensibility.start import Start
from extensibility.store import Store


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
    from extensibility.commands.lock import lock_argument

    lock_argument(parser, "--lock", help_text="also write the lock of the prepared "
                  "environment to FILE (what it adds to the image, each file with its URL and "
                  "hashes), to commit and use as the request")
    parser.add_argument("-r", "--requirement", type=Path, metavar="FILE",
                        help="with --target: this file instead of the deployment's request")
    target_arguments(parser)
    command_argument(parser)


def main(args: argparse.Namespace, context: Context) -> int:
    if args.target is not None:
        return _into_folder(args, context)
    start = open_start(context, server_command(args.command, context.settings))
    if args.lock_file is not None:
        from extensibility.commands.lock import check_lock_name, check_lockable

        check_lock_name(args.lock_file)
        check_lockable(start)  # before anything is built
    ready = environment_for(start, context.log)
    if start.request.kind == LIB_PATH and start.request.path is not None:
        from extensibility.libpath import check_lib_path

        check_lib_path(start, start.request.path, context.log)  # remembered for the start
    context.log.outcome("prepare", f"ready: {ready.path}" if ready else "nothing to prepare")
    if ready is not None:
        _publish(start.store, ready, args.publish, context)
        if args.lock_file is not None:
            _write_lock(start, ready.path, args.lock_file, context)
    return 0


def _write_lock(start: Start, environment: Path, path: Path, context: Context) -> None:
    """The lock of what `environment` holds (not a new resolution: the packages built)."""
    from extensibility.commands.lock import deliver
    from extensibility.lockfile.resolution import environment_packages
    from extensibility.resolve import resolve

    resolved = resolve(start, context.log)
    deliver(path, environment_packages(start, resolved, environment, context.log), start,
            context.log)


def _publish(store: Store, ready: Ready, asked: bool, context: Context) -> None:
    """A build claimed under the remote lease is published here, in the foreground (others
    wait for it); `--publish` also publishes an environment the remote does not have yet.
    A failure of the store is a warning: the environment is ready on this node anyway."""
    if ready.claim is None and not asked:
        return
    from extensibility.commands.remote_access import require_remote
    from extensibility.remote.transfer import publish_environment

    remote = ready.claim.remote if ready.claim is not None else require_remote(context)
    publish_environment(remote, store, ready.path.name, context.log, ready.claim, strict=False)


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
    context.log.outcome("prepare", f"ready: {args.target} (for "
                        "AZUREML_EXTRA_PYTHON_LIB_PATH)")
    return 0
