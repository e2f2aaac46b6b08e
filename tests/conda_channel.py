"""A real local conda channel for the tests: hand-made `.tar.bz2` packages, indexed by py-rattler.

Each package is an archive laid out as conda expects (the payload at the root, and
`info/index.json`, `info/paths.json`, `info/files`); `rattler.index.index_fs` writes the
channel's `repodata.json`, exactly as for any file:// channel.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

GREET_C = 'const char *greet_native(void) { return "native library says hi"; }\n'


def subdir() -> str:
    import rattler

    return str(rattler.Subdir.current())


def build_conda_package(channel: Path, name: str, version: str, files: Mapping[str, bytes],
                        *, depends: Sequence[str] = (), executables: Sequence[str] = (),
                        build: str = "0", symlinks: Mapping[str, str] | None = None) -> Path:
    """Write `channel/SUBDIR/name-version-build.tar.bz2` with `files` (path -> content)."""
    folder = channel / subdir()
    folder.mkdir(parents=True, exist_ok=True)
    index = {"name": name, "version": version, "build": build, "build_number": 0,
             "depends": list(depends), "subdir": subdir(), "license": "MIT",
             "timestamp": 1700000000000}
    paths = {"paths_version": 1, "paths": [
        {"_path": path, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
         "size_in_bytes": len(data)} for path, data in sorted(files.items())]
        + [{"_path": path, "path_type": "softlink"} for path in sorted(symlinks or {})]}
    archive = folder / f"{name}-{version}-{build}.tar.bz2"
    with tarfile.open(archive, "w:bz2", compresslevel=1) as tar:
        members = dict(files)
        members["info/index.json"] = json.dumps(index).encode()
        members["info/paths.json"] = json.dumps(paths).encode()
        members["info/files"] = "".join(
            f"{p}\n" for p in sorted([*files, *(symlinks or {})])).encode()
        for path, target in sorted((symlinks or {}).items()):
            link = tarfile.TarInfo(path)
            link.type = tarfile.SYMTYPE
            link.linkname = target
            tar.addfile(link)
        for path, data in sorted(members.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if path in executables else 0o644
            tar.addfile(info, io.BytesIO(data))
    return archive


def index_channel(channel: Path) -> None:
    import asyncio

    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)  # conda channels always have it
    result = index_fs(channel, write_zst=False, write_shards=False)
    if asyncio.iscoroutine(result):
        asyncio.run(result)


def native_channel(channel: Path, work: Path) -> Path:
    """A channel with `hello-native` 1.0 (and 1.1): a program `bin/hello-native` and a shared
    library `lib/libgreetnative.so` compiled here by gcc."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / "greet.c"
    source.write_text(GREET_C)
    library = work / "libgreetnative.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    for version in ("1.0", "1.1"):
        program = f'#!/bin/sh\necho "hello-native {version} from $(dirname "$0")"\n'.encode()
        build_conda_package(channel, "hello-native", version, {
            "bin/hello-native": program, "lib/libgreetnative.so": library.read_bytes()},
            executables=["bin/hello-native"])
    index_channel(channel)
    return channel


# parts of a CPython installation a conda package of it can leave out
_SKIPPED = {"test", "site-packages", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
            "__pycache__"}


def python_channel(channel: Path) -> Path:
    """Add a conda package `python` made from the interpreter running the tests (its real
    binary, shared library, standard library and extension modules), so a prefix gets a real
    Python from a channel without any download. The binary keeps its build's RUNPATH; at
    hand-off the prefix's `lib` comes first on LD_LIBRARY_PATH, which wins over RUNPATH."""
    base = Path(sys.base_prefix)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    files: dict[str, bytes] = {}
    executable = f"bin/python{version}"
    files[executable] = (base / executable).read_bytes()
    for library in (base / "lib").glob("libpython*.so*"):
        if library.is_file() and not library.is_symlink():
            files[f"lib/{library.name}"] = library.read_bytes()
    stdlib = base / "lib" / f"python{version}"
    for path in stdlib.rglob("*"):
        relative = path.relative_to(stdlib)
        if path.is_file() and not path.is_symlink() and not _SKIPPED & set(relative.parts) \
                and not relative.parts[0].startswith("config-"):
            files[f"lib/python{version}/{relative}"] = path.read_bytes()
    build_conda_package(channel, "python", sys.version.split()[0], files,
                        executables=[executable] + [p for p in files if p.endswith(".so")],
                        symlinks={"bin/python": f"python{version}",
                                  "bin/python3": f"python{version}"})
    index_channel(channel)
    return channel


def pip_channel(channel: Path, wheel: Path) -> Path:
    """Add a conda package `pip` holding the files of a pip wheel (site-packages of this
    interpreter's minor version), as conda-forge's pip package does."""
    import zipfile

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = f"lib/python{version}/site-packages"
    with zipfile.ZipFile(wheel) as archive:
        files = {f"{site}/{name}": archive.read(name) for name in archive.namelist()
                 if not name.endswith("/")}
    build_conda_package(channel, "pip", wheel.name.split("-")[1], files,
                        depends=[f"python {version}.*"])
    index_channel(channel)
    return channel
