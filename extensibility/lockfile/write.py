"""Write a `pylock.toml` (PEP 751) of located packages (resolution.py).

The lock is what the environment adds to the image: packages the image provides in a
satisfying version stay the image's and are not listed, so it is marked for this image's
Python (`environments`, `requires-python`) and says so in its header. Credentials are never
written: a URL's userinfo is dropped (the installer takes credentials from the index settings,
as for any download), and a URL with a secret in its query is refused. The text is checked
by reading it back as any lock is read before it is returned.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from extensibility import __version__
from extensibility.errors import RequestNotSupported
from extensibility.redact import redact_url
from extensibility.requirements import Requirement

CREATED_BY = "inference-extensibility"
HEADER = """\
# A PEP 751 lock written by `extensibility lock` (inference-extensibility {version}).
# It lists what this request adds to the image's Python ({python}, installer {installer});
# packages the image already provides in a satisfying version are the image's and are not
# listed. Use it as the request (AZUREML_EXTRA_REQUIREMENTS_TXT=pylock.toml) with this image:
# nothing is resolved, every file is checked against its hash.
"""
_TOP = ("lock-version", "environments", "requires-python", "created-by")
_PACKAGE = ("name", "version", "index", "archive", "sdist", "wheels")


def lock_text(packages: Sequence[Mapping[str, Any]], installer: str,
              folder: Path | None = None) -> str:
    """The lock file's text for `packages` (PEP 751 tables), for this interpreter; a local
    file under `folder` (where the lock goes) is written relative to it, as PEP 751 reads it,
    so the lock and its files can move together."""
    import platform

    implementation = sys.implementation.name
    python_version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    marker = (f"python_version == '{python_version}' and implementation_name == "
              f"'{implementation}' and sys_platform == '{sys.platform}' and "
              f"platform_machine == '{platform.machine()}'")
    document: dict[str, Any] = {
        "lock-version": "1.0", "environments": [marker],
        "requires-python": f"=={python_version}.*", "created-by": CREATED_BY,
    }
    lines = [HEADER.format(version=__version__, python=platform.python_version(),
                           installer=installer)]
    lines += [f"{key} = {_value(document[key])}" for key in _TOP]
    for package in sorted(packages, key=lambda p: str(p["name"])):
        lines.append("\n[[packages]]")
        clean = _relative_paths(_without_secrets(package), folder)
        lines += [f"{key} = {_value(clean[key])}" for key in _PACKAGE if key in clean]
    lines.append(f"\n[tool.extensibility]\ninstaller = {_value(installer)}\n"
                 f"image-python = {_value(platform.python_version())}")
    return "\n".join(lines) + "\n"


def selection_text(requirements: Sequence[Requirement]) -> str:
    """A lock's selection (lockfile/read.py) as the lock file an installer is given: each
    package with the one file chosen for this interpreter, by URL or absolute path."""
    lines = ['lock-version = "1.0"', f'created-by = "{CREATED_BY}"']
    if not requirements:
        lines.append("packages = []")
    for requirement in requirements:
        url = requirement.install_text.split(" @ ", 1)[1]
        where = {"path": requirement.local[0]} if requirement.local else {"url": url}
        hashes = dict(h.split(":", 1) for h in requirement.hashes)
        file = {**where, "hashes": hashes}
        lines += ["", "[[packages]]", f"name = {_value(requirement.name)}"]
        if requirement.version:
            lines.append(f"version = {_value(requirement.version)}")
        if " @ " in requirement.key_text:  # an archive (a direct reference)
            lines.append(f"archive = {_value(file)}")
        elif url.split("?")[0].split("#")[0].endswith(".whl"):
            lines.append(f"wheels = [{_value(file)}]")
        else:
            lines.append(f"sdist = {_value(file)}")
    return "\n".join(lines) + "\n"


def _without_secrets(value: Any) -> Any:
    """`value` with every URL's userinfo dropped; a secret in a query is refused."""
    if isinstance(value, Mapping):
        return {k: _url(v) if k in ("url", "index") and isinstance(v, str)
                else _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def _relative_paths(value: Any, folder: Path | None) -> Any:
    """Local files by `path` (a `file:` URL becomes one), relative to `folder` when under it."""
    if isinstance(value, Mapping):
        url = value.get("url")
        if isinstance(url, str) and url.startswith("file:"):
            from urllib.request import url2pathname

            value = {("path" if k == "url" else k): v for k, v in value.items()}
            value["path"] = url2pathname(urlsplit(url).path)
        return {k: _relative(v, folder) if k == "path" and isinstance(v, str)
                else _relative_paths(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(item, folder) for item in value]
    return value


def _relative(path: str, folder: Path | None) -> str:
    if folder is None:
        return path
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return path  # outside the lock's folder: absolute


def _url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = host + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    if redact_url(url) != url:
        raise RequestNotSupported(f"{redact_url(url)} carries a secret in its query: it "
                                  "cannot be written into a lock file",
                                  fix="serve the package from an index whose credentials "
                                  "are in PIP_INDEX_URL / UV_INDEX_URL (never in the lock)")
    return url


def _value(value: Any) -> str:
    """A TOML value: strings, numbers, booleans, dates, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def write_lock(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all, after reading it back as a lock."""
    from extensibility.lockfile.read import load
    from extensibility.store import write_atomic

    load(path, text.encode("utf-8"))
    write_atomic(path, text)
