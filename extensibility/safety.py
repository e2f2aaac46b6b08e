"""The cache's safety rule: nobody but its owner can change what the server will run.

Rule: every folder and file a start runs from belongs to this user or to root (a cache
prepared as root at image build time and served by the image's user), and no other user
can write it (no group or world write bit).

Kept cheap on the warm path:
- a build creates everything under a strict umask (`build_umask`) and, before the marker,
  walks the new environment once (`secure_tree`): a write bit for others is taken off, an
  entry owned by someone else fails the build. After that only the owner (or root) could
  loosen anything;
- a start checks only the folders on the way to what it runs (`check`): the cache root,
  `envs/`, `locks/`, `warm/`, the environment and its `.extensibility`, `bin` and
  site-packages folders: about a dozen stat calls.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from extensibility.errors import UnsafeCache

ROOT_UID = 0


def trusted(uid: int) -> bool:
    return uid in (os.getuid(), ROOT_UID)


def build_umask() -> int:
    """Files we create: readable by everyone when root prepares a cache (an image's server
    user must read it), private otherwise; never writable by anyone else."""
    return 0o022 if os.getuid() == ROOT_UID else 0o077


def file_mode() -> int:
    return 0o666 & ~build_umask()


def folder_mode() -> int:
    return 0o777 & ~build_umask()


def _writable_by_others(info: os.stat_result) -> bool:
    return bool(info.st_mode & 0o022) and not stat.S_ISLNK(info.st_mode)


def _refuse(path: Path, info: os.stat_result) -> None:
    if not trusted(info.st_uid):
        raise UnsafeCache(f"{path} belongs to uid {info.st_uid}, not to this user "
                          f"({os.getuid()}) nor to root",
                          fix=f"chown -R {os.getuid()} {path}, or point EXTENSIBILITY_CACHE_DIR "
                          "at a folder of this user's")
    if _writable_by_others(info):
        raise UnsafeCache(f"{path} can be written by other users (mode "
                          f"{info.st_mode & 0o777:o})",
                          fix=f"chmod -R go-w {path}, or point EXTENSIBILITY_CACHE_DIR at a "
                          "subfolder of it, which is then created private (for a "
                          "group-writable volume, e.g. a Kubernetes fsGroup mount)")


def check(paths: Iterable[Path]) -> None:
    """Refuse (exit 92) if another user could change any of `paths` (missing ones pass).
    Links are followed: a cache folder given as a link is judged by what it points to."""
    for path in paths:
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        _refuse(path, info)


def secure_tree(root: Path) -> None:
    """Take other users' write bits off everything under `root` (a new build of ours);
    refuse an entry owned by someone else. Links are not followed."""
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:  # the background compile's temporary file, renamed
                continue
            if stat.S_ISLNK(info.st_mode):
                continue
            if not trusted(info.st_uid):
                _refuse(Path(path), info)
            if info.st_mode & 0o022:
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o022)
    info = os.lstat(root)
    if info.st_mode & 0o022:
        os.chmod(root, stat.S_IMODE(info.st_mode) & ~0o022)


def clear_unsafe_cache(folder: Path) -> bool:
    """A download cache (uv's, pip's) another user could have changed is removed, not used:
    it is only a cache. Returns whether it was."""
    import shutil

    for current, dirs, files in os.walk(folder):
        for name in (".", *dirs, *files):
            path = os.path.join(current, name)
            info = os.lstat(path)
            if not trusted(info.st_uid) or _writable_by_others(info):
                shutil.rmtree(folder, ignore_errors=True)
                if folder.exists():
                    _refuse(Path(path), info)
                return True
    return False
