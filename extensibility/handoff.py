"""The final step: the server's argv and environment, then `exec` (same PID, direct signals).

The server must run *inside* the overlay. A console script of the image names the image's
interpreter in its shebang, so a program that is a Python script is started by the overlay's
interpreter instead; `PATH` gets the overlay's `bin` first for everything the server starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from extensibility.activation import apply_activation, read_activation
from extensibility.errors import ServerNotFound, SettingsError
from extensibility.overlay import overlay_python
from extensibility.server_command import find_program, read_head
from extensibility.settings import Settings

DEFAULT_SERVER = "azmlinfsrv"


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class Handoff:
    """The server's process: the file exec'd, its argv, environment and folder."""

    def __init__(self, program: str, argv: tuple[str, ...], env: Mapping[str, str],
                 cwd: Path) -> None:
        self.program = program
        self.argv = argv
        self.env = env
        self.cwd = cwd

    def describe(self) -> str:
        return " ".join(self.argv)


def default_command(settings: Settings) -> list[str]:
    """What the prebuilt images' start script runs."""
    command = [DEFAULT_SERVER, "--entry_script", settings.entry_script,
               "--port", str(settings.server_port)]
    if settings.model_dir:
        command += ["--model_dir", settings.model_dir]
    return command


def prepare_handoff(settings: Settings, command: Sequence[str] | None, env: Mapping[str, str],
                 overlay: Path | None, lib_path: Path | None) -> Handoff:
    argv = list(command) if command else default_command(settings)
    if not settings.app_root.is_dir():
        raise SettingsError(f"AML_APP_ROOT={str(settings.app_root)!r}: the app folder does "
                            "not exist (the server runs from there)",
                            fix="mount the app at that folder, or set AML_APP_ROOT to it")
    new_env = dict(env)
    if lib_path is not None:
        existing = env.get("PYTHONPATH")
        new_env["PYTHONPATH"] = f"{lib_path}{os.pathsep}{existing}" if existing else str(lib_path)
    if overlay is not None:
        new_env["PATH"] = f"{overlay / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
        new_env["VIRTUAL_ENV"] = str(overlay)
        apply_activation(read_activation(overlay), new_env, overlay / "bin")
    program = find_program(argv[0], new_env.get("PATH", os.defpath), settings.app_root)
    if program is None:
        if argv[0] == DEFAULT_SERVER:
            fix = ("install azureml-inference-server-http into the image, or give the server "
                   "command after `--`")
        else:
            fix = f"check the command after `--`; {argv[0]!r} is not on PATH"
        raise ServerNotFound(f"server command {argv[0]!r} not found on PATH", fix=fix)
    if overlay is not None and _is_foreign_python_script(program, overlay):
        python = str(overlay_python(overlay))
        return Handoff(python, (python, program, *argv[1:]), new_env, settings.app_root)
    return Handoff(program, (argv[0], *argv[1:]), new_env, settings.app_root)


def execute(handoff: Handoff, umask: int | None = None) -> NoReturn:
    """Become the server (`umask`: the one the entrypoint was started with)."""
    if umask is not None:
        os.umask(umask)
    os.chdir(handoff.cwd)
    os.execve(handoff.program, list(handoff.argv), dict(handoff.env))


def _is_foreign_python_script(program: str, overlay: Path) -> bool:
    """A script whose shebang starts some Python other than the overlay's."""
    head = read_head(program, 512)
    if not head.startswith(b"#!"):
        return False
    first, _, rest = head.partition(b"\n")
    interpreter = first[2:].strip()
    if interpreter == b"/bin/sh" and rest.startswith(b"'''exec'"):
        # pip's launcher for long interpreter paths: the real interpreter is on line two
        interpreter = rest.split(b'"')[1] if rest.count(b'"') >= 2 else b""
    words = interpreter.split()
    # `#!/usr/bin/env python3` needs nothing: PATH already finds the overlay's python3
    if not words or b"python" not in os.path.basename(words[0]):
        return False
    return os.fsdecode(words[0]) != str(overlay_python(overlay))
