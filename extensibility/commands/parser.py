"""The argparse parser, built from the command table (never imported by a plain `run`)."""

from __future__ import annotations

import argparse
import importlib
import textwrap
from collections.abc import Sequence

from extensibility import __version__
from extensibility.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extensibility", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Install a deployment's extra Python packages into a cached overlay "
        "environment over this image's Python, then start the scoring server in it.\n"
        "Configuration is read from environment variables (listed below).",
        epilog=variables_help())
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbosity_arguments(parser, default=False)
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        command = commands.add_parser(name, help=summary,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        # after the command too; given there, it overrides the one before it
        verbosity_arguments(command, default=argparse.SUPPRESS)
        importlib.import_module(f"extensibility.commands.{module}").add_arguments(command)
        if name == "run":
            command.epilog = variables_help()
    return parser


def verbosity_arguments(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="only the outcome line (the hand-off, the environment ready), "
                       "warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="the installers run verbosely; everything is shown")


def variables_help() -> str:
    """Every variable, from the one settings table: the contract's, then ours."""
    from extensibility.settings import SETTINGS

    lines = []
    for contract in (True, False):
        lines.append("the prebuilt images' variables:" if contract else
                     "this entrypoint's variables (docs/variables.md):")
        for setting in (s for s in SETTINGS if s.contract == contract):
            default = setting.default if setting.default is not None else (
                "computed" if setting.dynamic_default else "unset")
            lines.append(f"  {setting.variable} (default: {default})")
            lines += textwrap.wrap(setting.help, 76, initial_indent="      ",
                                   subsequent_indent="      ")
    return "\n".join(lines)


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
