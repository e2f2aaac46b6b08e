"""`extensibility wheelhouse -r FILE -o DIR`: every wheel a request needs, with a manifest,
for EXTENSIBILITY_WHEELHOUSE (offline deployments; target.py does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

from extensibility.commands import Context
from extensibility.commands.parser import target_arguments
from extensibility.target import Target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--requirement", type=Path, required=True, metavar="FILE")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    parser.add_argument("--build-sdists", action="store_true",
                        help="build wheels of source-only packages (this interpreter only)")
    target_arguments(parser)


def target_of(args: argparse.Namespace) -> Target:
    return Target(args.python_version, tuple(args.platform), args.abi, args.implementation)


def main(args: argparse.Namespace, context: Context) -> int:
    from extensibility.target import build_wheelhouse, read_request

    source, target = args.requirement.absolute(), target_of(args)
    spec = read_request(source, context.env, target, context.settings, context.log)
    manifest = build_wheelhouse(source, spec, args.output.absolute(), target, args.build_sdists,
                                context.env, context.log, context.settings.install_timeout)
    context.log.phase("wheelhouse", f"ready: {args.output} (manifest {manifest.name})")
    return 0
