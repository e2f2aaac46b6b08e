"""The argparse parser, built from the command table (never imported by a plain `run`)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from extensibility import __version__
from extensibility.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extensibility",
        description="Install a deployment's extra Python packages into a cached overlay "
        "environment over this image's Python, then start the scoring server in it.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        command = commands.add_parser(name, help=summary)
        importlib.import_module(f"extensibility.commands.{module}").add_arguments(command)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def command_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the server command and its arguments, after `--` (default: "
                        "azmlinfsrv --entry_script ...); give `plan` and `prepare` the one "
                        "`run` will get: the server's package is part of the key")


def target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "target interpreter", "defaults: the interpreter running this command (the image's, "
        "when run inside it)")
    group.add_argument("--python-version", metavar="X.Y")
    group.add_argument("--platform", action="append", default=[], metavar="TAG",
                       help="e.g. manylinux_2_28_x86_64 (repeatable)")
    group.add_argument("--abi", metavar="TAG", help="e.g. cp311")
    group.add_argument("--implementation", metavar="NAME", help="e.g. cp")
