"""Everything one start depends on, read once.

A `Start` is made once per process from the settings, the request and the environment: the
request file's bytes, the image (interpreter and package listing), the installer and its
configuration, the server module. The warm digest (warm.py) and the full key (key.py) are
both derived from this one value, so they cannot disagree about what was read, and nothing
is read again after a build to describe what was built.

Cheap on purpose: the warm path makes one. What only a cold start needs (the protection,
which reads package metadata) is computed by resolve.py, once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

from extensibility.fingerprint import sha256_bytes
from extensibility.image import Image, current_image
from extensibility.inputs import read_request_file
from extensibility.installers.choice import choose_installer
from extensibility.installers.config import installer_settings
from extensibility.request import CONDA, Request
from extensibility.server_command import server_module
from extensibility.settings import Settings
from extensibility.store import Store


class Start:
    def __init__(self, settings: Settings, env: Mapping[str, str], command: Sequence[str],
                 request: Request, *, image: Image | None = None,
                 installer: tuple[str, str | None] | None = None,
                 compile_at_build: bool = True) -> None:
        """`image` and `installer` (name, binary) default to what this process finds;
        `compile_at_build` False: a build leaves byte-compiling to the start (compile.py)."""
        self.settings = settings
        self.compile_at_build = compile_at_build
        self.env = dict(env)
        self.command = list(command)
        self.request = request
        self.store = Store(settings.cache_dir)
        self.image = image or current_image()
        self.installer, self.uv_binary = installer or choose_installer(settings.installer)
        self.server_module = server_module(command, env.get("PATH", os.defpath),
                                           settings.app_root)
        # the request file, read once: its digest names the warm note, its bytes are parsed
        self.request_data: bytes | None = None
        self.request_digest: str | None = None
        if request.installs:
            assert request.path is not None
            what = "conda file" if request.kind == CONDA else \
                "lock file" if request.is_lock else "requirements file"
            self.request_data = read_request_file(request.path, what)
            self.request_digest = sha256_bytes(self.request_data)

    @property
    def request_path(self) -> Path:
        assert self.request.path is not None, "only a request that installs has a file"
        return self.request.path

    @cached_property
    def installer_settings(self) -> dict[str, object]:
        """The user's installer configuration (variables, config files by content)."""
        return installer_settings(self.installer, self.env)
