"""The two layouts with a conda prefix (see layouts.py for the interface).

`ENV/conda` is the prefix; `ENV` itself is a venv (over the image's Python for the native
layout, over the prefix's Python for the python layout), so the store, the cache marker and
the hand-off treat every layout alike.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from extensibility.activation import Activation
from extensibility.conda.prefix import PREFIX_DIR, build_prefix, prefix_python
from extensibility.conda.request import CondaRequest
from extensibility.errors import InstallFailed
from extensibility.layouts import OverlayLayout, Site
from extensibility.log import Log
from extensibility.process import run_captured
from extensibility.protection import Held, Protection
from extensibility.requirements import Origin, Requirement
from extensibility.resolve import Resolved
from extensibility.settings import ProtectMode
from extensibility.start import Start


def _prefix(start: Start, conda: CondaRequest, root: Path, log: Log) -> Path:
    prefix = root / PREFIX_DIR
    build_prefix(prefix, conda.specs, conda.channels,
                 start.store.downloads / "conda",
                 start.settings.install_timeout, log)
    return prefix


def _prefix_activation(conda: CondaRequest, root: Path) -> Activation:
    prefix = root / PREFIX_DIR
    return Activation(path=(str(prefix / "bin"),), library_path=(str(prefix / "lib"),),
                      variables=dict(conda.file.variables), conda_prefix=str(prefix))


class NativePrefixLayout(OverlayLayout):
    """The overlay over the image's Python, and the file's native packages in a prefix."""

    def __init__(self, start: Start, resolved: Resolved, conda: CondaRequest) -> None:
        super().__init__(start, resolved)
        self.conda = conda

    def create(self, root: Path, log: Log) -> Site:
        site = super().create(root, log)
        _prefix(self.start, self.conda, root, log)
        return site

    def activation(self, root: Path) -> Activation:
        return _prefix_activation(self.conda, root)


class PythonPrefixLayout:
    """The prefix with the file's own Python, and a venv on it at `root` that receives the
    `pip:` section plus the scoring server at the image's version."""

    def __init__(self, start: Start, resolved: Resolved, conda: CondaRequest) -> None:
        self.start = start
        self.resolved = resolved
        self.conda = conda

    def create(self, root: Path, log: Log) -> Site:
        start, conda, spec = self.start, self.conda, self.resolved.spec
        prefix = _prefix(start, conda, root, log)
        base = prefix_python(prefix)
        if base is None:
            raise InstallFailed(f"the conda packages of {conda.file.path} bring no Python "
                                f"({prefix}/bin/python is missing)",
                                fix="add `python=3.X` to the dependencies, or a channel that "
                                "has Python (EXTENSIBILITY_CONDA_CHANNELS)")
        timeout = start.settings.install_timeout
        _run([str(base), "-m", "venv", "--without-pip", "--symlinks", str(root)], "venv", timeout)
        python = root / "bin" / "python"
        purelib, version = _run([str(python), "-c", "import sys, sysconfig; print(sysconfig."
                                 "get_path('purelib')); print(sys.version.split()[0])"],
                                "site-packages", timeout).splitlines()
        log.phase("install", f"venv on the prefix's Python {version} created at {root}")
        from extensibility.protection import resolve_protection

        mode, module = start.settings.protect, start.server_module
        # whatever the mode, the server must be on the prefix's Python to serve at all
        server = resolve_protection(ProtectMode.SERVER, module, start.image).server \
            if module else None
        site = Site(python, Path(purelib), str(python), True, spec,
                    Protection(mode, module, None), {}, ())
        if server is None:
            log.warning("protect", "the server command is not a console script of a package "
                        "of the image: no scoring server is installed on the prefix's Python")
            return site
        version = start.image.distributions[server]
        pin = f"{server}=={version}"
        held = Held(server, version, reason="the image's scoring server")
        log.phase("protect", f"the scoring server is installed at the image's version: {pin}")
        origin = Origin(conda.file.path, 0, f"scoring server {pin}")
        line = Requirement(install_text=pin, key_text=pin, name=server, origin=origin)
        return replace(site, spec=replace(spec, requirements=(*spec.requirements, line)),
                       protection=Protection(mode, module, server, {server: held}))

    def activation(self, root: Path) -> Activation:
        return _prefix_activation(self.conda, root)


def _run(command: list[str], what: str, timeout: float) -> str:
    completed = run_captured(command, timeout, merge=False)
    if completed.returncode != 0 or completed.timed_out:
        raise InstallFailed(f"preparing the prefix's Python failed ({what}): "
                            f"{completed.tail or completed.output.strip() or 'no output'}")
    return completed.output
