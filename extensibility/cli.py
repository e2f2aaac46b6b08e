"""`extensibility COMMAND`: `main(argv, environ) -> int`, one exit code per failure.

A plain `run` (`run`, `run -- CMD...`, `run CMD...`), the container's every start, goes
straight to commands/run.py without argparse or the command table: the warm path imports
only what it uses. Everything else is parsed by commands/parser.py and dispatched from
`commands.COMMANDS`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence

from extensibility.errors import ExtensibilityError
from extensibility.log import NORMAL, QUIET, VERBOSE, Log

INTERNAL_ERROR = 1


# the global options, accepted before the command as in pip, uv and git (and after it)
VERBOSITY_FLAGS = {"-q": QUIET, "--quiet": QUIET, "-v": VERBOSE, "--verbose": VERBOSE}


def plain_run(argv: Sequence[str]) -> tuple[list[str], int] | None:
    """The server command of a `run` that needs no argument parsing (empty: the default)
    and the verbosity its -q/-v flags ask for, or None when argparse must look at `argv`
    (another command, another option, `--help`)."""
    verbosity = NORMAL
    rest = list(argv)
    while rest and rest[0] in VERBOSITY_FLAGS:
        verbosity = VERBOSITY_FLAGS[rest.pop(0)]
    if not rest or rest.pop(0) != "run":
        return None
    while rest and rest[0] in VERBOSITY_FLAGS:
        verbosity = VERBOSITY_FLAGS[rest.pop(0)]
    if rest[:1] == ["--"]:
        return rest[1:], verbosity
    if rest and rest[0].startswith("-"):
        return None
    return rest, verbosity


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    started = time.monotonic()
    env = dict(os.environ if environ is None else environ)
    arguments = list(sys.argv[1:] if argv is None else argv)
    plain = plain_run(arguments)
    args = None
    if plain is None:
        from extensibility.commands.parser import parse

        args = parse(arguments)  # exits 2 with argparse's message on a usage error
        verbosity = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    else:
        command, verbosity = plain
    log = Log("text", started=started, verbosity=verbosity)  # text until the settings say
    # what we create under the cache is never writable by others, whatever the umask; the
    # server gets the umask it was started with back (handoff.execute)
    from extensibility.safety import build_umask

    umask = os.umask(build_umask())
    try:
        from extensibility.commands import Context
        from extensibility.settings import Settings

        settings = Settings.from_environ(env)
        log.fmt = settings.log_format
        context = Context(settings, env, log, umask)
        if args is None:
            from extensibility.commands.run import serve, server_command

            return serve(context, server_command(command, settings))
        import importlib

        from extensibility.commands import COMMANDS

        module = importlib.import_module(f"extensibility.commands.{COMMANDS[args.action][0]}")
        result: int = module.main(args, context)
        return result
    except ExtensibilityError as error:
        log.failure(error)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug of ours: say so plainly, keep the traceback for the report
        import traceback

        sys.stderr.write(traceback.format_exc())
        sys.stderr.write("extensibility: internal error (the traceback above is for a bug "
                         "report)\n")
        return INTERNAL_ERROR
    finally:
        os.umask(umask)


def console_main() -> None:
    sys.exit(main())
