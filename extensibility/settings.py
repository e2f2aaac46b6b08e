"""Every setting in one place: its variable, default, meaning, and where its value came from.

The environment is read once, into a frozen `Settings`; nothing else reads `os.environ`
for configuration (the handoff copies the environment, it does not interpret it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path

from extensibility.errors import SettingsError

TYPE_CHECKING = False  # typing costs the warm path an import; mypy knows this name
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")
INSTALLER_CHOICES = ("auto", "uv", "pip")
LOG_FORMATS = ("text", "json")


def _default_cache_dir(env: Mapping[str, str]) -> str:
    # A non-root user must be able to write here without any setup: prefer the XDG cache
    # folder of the user, fall back to a per-user folder in /tmp when HOME is unusable.
    base = env.get("XDG_CACHE_HOME") or (
        os.path.join(env["HOME"], ".cache") if env.get("HOME") else ""
    )
    if base and _creatable(Path(base)):
        return os.path.join(base, "azureml-extensibility")
    return os.path.join("/tmp", f"azureml-extensibility-{os.getuid()}")


def _creatable(path: Path) -> bool:
    try:
        for candidate in (path, *path.parents):
            if candidate.exists():
                return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    except OSError:  # an unreadable HOME: fall back to /tmp
        return False
    return False


class ProtectMode(str, Enum):
    """EXTENSIBILITY_PROTECT: what a request may not change (protection.py)."""

    SERVER = "server"  # the server package and the ranges its dependencies declare
    IMAGE = "image"  # every image package at its exact version
    OFF = "off"  # nothing held; conflicts are warnings (the boot check still decides)

    def __str__(self) -> str:
        return self.value


def _text(text: str, variable: str) -> str:
    return text


class Setting:
    """One documented variable: docs/variables.md is checked against this table. `parse`
    turns the text (the variable's, else the default) into the value `Settings` holds; an
    unset setting without a default is None."""

    def __init__(self, name: str, variable: str, default: str | None, help: str, *,
                 contract: bool = False,
                 dynamic_default: Callable[[Mapping[str, str]], str] | None = None,
                 choices: tuple[str, ...] = (),
                 parse: Callable[[str, str], object] = _text) -> None:
        self.name = name
        self.variable = variable
        self.default = default
        self.help = help
        self.contract = contract
        self.dynamic_default = dynamic_default
        self.choices = choices
        self.parse = parse


class Settings:
    """The settings of one start, read once from the environment; never changed after."""

    app_root: Path
    entry_script: str
    extra_python_lib_path: str | None
    conda_yaml_abs_path: str | None
    conda_yaml: str | None
    requirements_txt: str | None
    model_dir: str | None
    server_port: int
    cache_dir: Path
    installer: str
    lock_timeout: float
    protect: ProtectMode
    wheelhouse: str | None
    conda_strategy: str
    conda_channels: str | None
    require_hashes: bool
    allowed_index_hosts: tuple[str, ...] | None
    no_extra_index: bool
    no_direct_references: bool
    install_timeout: float
    remote_cache: str | None
    remote_wait: float
    compile: str
    retries: int
    gc_max_age: float | None
    gc_max_size: int | None
    gc_min_idle: float
    log_format: str
    # setting name -> "VARIABLE" when set by the environment, "default" otherwise
    sources: Mapping[str, str]

    def __init__(self, sources: Mapping[str, str] | None = None, **values: object) -> None:
        missing = {s.name for s in SETTINGS} - set(values)
        assert not missing, f"settings without a value: {missing}"
        for name, value in values.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "sources", dict(sources or {}))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"settings are read once and not changed ({name})")

    def policy(self) -> dict[str, object]:
        """The policy settings: part of the cache key, so changing them re-checks a request."""
        return {"require_hashes": self.require_hashes,
                "allowed_index_hosts": list(self.allowed_index_hosts or []) or None,
                "no_extra_index": self.no_extra_index,
                "no_direct_references": self.no_direct_references}

    @property
    def entry_script_dir(self) -> Path:
        """The folder relative paths of the contract are resolved against."""
        return (self.app_root / self.entry_script).parent

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Settings:
        values: dict[str, object] = {}
        sources: dict[str, str] = {}
        for setting in SETTINGS:
            text: str | None = env.get(setting.variable, "").strip()
            if text:
                sources[setting.name] = setting.variable
            else:
                dynamic = setting.dynamic_default
                text = dynamic(env) if dynamic else setting.default
                sources[setting.name] = "default"
            if text is None:
                values[setting.name] = None
                continue
            if setting.choices and text not in setting.choices:
                allowed = ", ".join(setting.choices)
                raise SettingsError(
                    f"{setting.variable}={text!r} is not one of {allowed}",
                    fix=f"set {setting.variable} to one of {allowed} or unset it",
                )
            values[setting.name] = setting.parse(text, setting.variable)
        return cls(sources, **values)


def _path(text: str, variable: str) -> Path:
    return Path(text)


def _absolute_path(text: str, variable: str) -> Path:
    return Path(text).absolute()


def _protect_mode(text: str, variable: str) -> ProtectMode:
    return ProtectMode(text)


def _seconds(text: str, variable: str) -> float:
    return _parsed(text, parse_duration, variable)


def _size(text: str, variable: str) -> int:
    return _parsed(text, parse_size, variable)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# ASCII digits only: str.isdigit() and float() also take "²" or "٣"
_NUMBER_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?\Z")
_SIZE_RE = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,9})?) ?([kmgt]?)(?:i?b)?\Z")
MAX_SECONDS = 10.0**9  # about 31 years: "forever" without the overflow of a real infinity


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `12h`, `30d` -> seconds (finite, not negative)."""
    text = text.strip().lower()
    unit = text[-1] if text and text[-1] in _DURATION_UNITS else "s"
    number = text[:-1] if text and text[-1] in _DURATION_UNITS else text
    if not _NUMBER_RE.match(number):
        raise ValueError(text)
    value = float(number) * _DURATION_UNITS[unit]
    if value > MAX_SECONDS:
        raise ValueError(text)
    return value


def parse_size(text: str) -> int:
    """`500M`, `20G`, `2GiB`, `1048576` -> bytes (binary units)."""
    match = _SIZE_RE.match(text.strip().lower())
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _parsed(text: str, parse: Callable[[str], T], variable: str) -> T:
    try:
        return parse(text)
    except ValueError:
        raise SettingsError(f"{variable}={text!r} cannot be read",
                            fix=f"see docs/variables.md for the form {variable} takes") from None


def _flag(text: str, variable: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{variable}={text!r} is neither on nor off",
                        fix=f"set {variable} to 1 or 0")


def _whole(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _count(text: str, variable: str) -> int:
    value = _whole(text)
    if value is None or value > 100:
        raise SettingsError(f"{variable}={text!r} is not a whole number from 0 to 100",
                            fix=f"set {variable} to a number such as 3")
    return value


def _hosts(text: str, variable: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in text.split(",") if h.strip())
    if not hosts:
        raise SettingsError(f"EXTENSIBILITY_ALLOWED_INDEX_HOSTS={text!r} names no host",
                            fix="list the allowed hosts, comma-separated (e.g. pypi.org), or "
                            "unset the variable")
    return hosts


def _remote_url(text: str, variable: str) -> str:
    """The remote cache's URL, checked for its shape here (every start, warm or cold, refuses
    a malformed one alike); remote/azure.py parses it when it is used. The value is never
    quoted: a mistake there is often a secret (a connection string, a SAS, a password)."""
    problem = _remote_url_problem(text)
    if problem is not None:
        raise SettingsError(f"EXTENSIBILITY_REMOTE_CACHE is not the URL of a blob container: "
                            f"{problem} (the value is not shown: it may hold a secret)",
                            fix="set EXTENSIBILITY_REMOTE_CACHE to https://ACCOUNT.blob.core."
                            "windows.net/CONTAINER[/PREFIX], with a SAS token as the query if "
                            "it is the credential; a connection string goes in "
                            "AZURE_STORAGE_CONNECTION_STRING")
    return text


_CONNECTION_STRING_FIELDS = ("accountkey=", "sharedaccesssignature=", "accountname=",
                             "defaultendpointsprotocol=", "blobendpoint=")


def _remote_url_problem(text: str) -> str | None:
    """What is wrong with a remote cache URL, in words that quote none of it."""
    lowered = text.lower()
    if ";" in text or any(field in lowered for field in _CONNECTION_STRING_FIELDS):
        return "it looks like a storage connection string"
    scheme, _, rest = text.partition("://")
    before_query = rest.split("?", 1)[0]
    if "sig=" in before_query.lower():
        return "it holds a SAS signature outside the URL's query"
    path = before_query.partition("/")[2]
    if scheme not in ("http", "https") or not before_query.split("/", 1)[0] or \
            not path.strip("/"):
        return "it is not an http(s) URL naming a container"
    return None


def _port(text: str, variable: str) -> int:
    value = _whole(text)
    if value is None or not 0 < value < 65536:
        raise SettingsError(f"EXTENSIBILITY_SERVER_PORT={text!r} is not a TCP port",
                            fix="set EXTENSIBILITY_SERVER_PORT to a number from 1 to 65535")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting("app_root", "AML_APP_ROOT", "/var/azureml-app",
            "App folder; the server runs from here.", contract=True,
            parse=_path),
    Setting("entry_script", "AZUREML_ENTRY_SCRIPT", "main.py",
            "Scoring script, relative to the app root.", contract=True),
    Setting("extra_python_lib_path", "AZUREML_EXTRA_PYTHON_LIB_PATH", None,
            "Folder of pre-installed packages, relative to the entry-script folder; "
            "prepended to PYTHONPATH.", contract=True),
    Setting("conda_yaml_abs_path", "AZUREML_EXTRA_CONDA_YAML_ABS_PATH", None,
            "Conda environment file, absolute path.", contract=True),
    Setting("conda_yaml", "AZUREML_EXTRA_CONDA_YAML", None,
            "Conda environment file, relative to the entry-script folder.", contract=True),
    Setting("requirements_txt", "AZUREML_EXTRA_REQUIREMENTS_TXT", None,
            "pip requirements file, or a PEP 751 lock file (pylock.toml, pylock.NAME.toml), "
            "relative to the entry-script folder or absolute.",
            contract=True),
    Setting("model_dir", "AZUREML_MODEL_DIR", None,
            "Model folder, passed on to the server as --model_dir.", contract=True),
    Setting("server_port", "EXTENSIBILITY_SERVER_PORT", "5001",
            "Port passed to the default server command as --port (azmlinfsrv ignores "
            "SERVER_PORT from the environment).",
            parse=_port),
    Setting("cache_dir", "EXTENSIBILITY_CACHE_DIR", None,
            "Cache folder for environments. Default: $XDG_CACHE_HOME/azureml-extensibility, "
            "else ~/.cache/azureml-extensibility, else /tmp/azureml-extensibility-<uid>.",
            dynamic_default=_default_cache_dir,
            parse=_absolute_path),
    Setting("installer", "EXTENSIBILITY_INSTALLER", "auto",
            "Installer backend: auto (uv when installed, else pip), uv, or pip.",
            choices=INSTALLER_CHOICES),
    Setting("lock_timeout", "EXTENSIBILITY_LOCK_TIMEOUT", "1800",
            "Seconds to wait for another start that is building the same environment.",
            parse=_seconds),
    Setting("protect", "EXTENSIBILITY_PROTECT", "server",
            "What the request may not change: server (the scoring server's dependency closure "
            "as installed in the image), image (every image package), or off.",
            choices=tuple(m.value for m in ProtectMode),
            parse=_protect_mode),
    Setting("wheelhouse", "EXTENSIBILITY_WHEELHOUSE", None,
            "Offline wheel folder (relative to the entry-script folder, or absolute): installs "
            "use only its wheels and contact no index, whatever the request file says."),
    Setting("require_hashes", "EXTENSIBILITY_REQUIRE_HASHES", "0",
            "Policy: every requirement must be pinned (==) with --hash; installs check them.",
            parse=_flag),
    Setting("allowed_index_hosts", "EXTENSIBILITY_ALLOWED_INDEX_HOSTS", None,
            "Policy: comma-separated host names; any index, find-links or URL requirement "
            "elsewhere is refused (the default index counts as pypi.org).",
            parse=_hosts),
    Setting("no_extra_index", "EXTENSIBILITY_NO_EXTRA_INDEX", "0",
            "Policy: refuse --extra-index-url (and PIP_/UV_EXTRA_INDEX_URL): no mixing of a "
            "private index with another one (dependency confusion).",
            parse=_flag),
    Setting("no_direct_references", "EXTENSIBILITY_NO_DIRECT_REFERENCES", "0",
            "Policy: refuse direct URL, VCS and local-path requirements.",
            parse=_flag),
    Setting("conda_strategy", "EXTENSIBILITY_CONDA_STRATEGY", "auto",
            "How a conda file is met: auto (the overlay when it is faithful, else a conda "
            "prefix), overlay (always the image's Python; native packages are left to the "
            "image), or prefix (always a conda prefix with the file's own Python).",
            choices=("auto", "overlay", "prefix")),
    Setting("conda_channels", "EXTENSIBILITY_CONDA_CHANNELS", None,
            "Comma-separated conda channels (URLs, names or local folders) used instead of "
            "the conda file's own: a mirror, or an offline channel folder."),
    Setting("compile", "EXTENSIBILITY_COMPILE", "auto",
            "When a build byte-compiles the environment: auto (`run` compiles in the "
            "background after the server starts, `prepare` while installing) or build "
            "(always while installing, before the server starts).",
            choices=("auto", "build")),
    Setting("remote_cache", "EXTENSIBILITY_REMOTE_CACHE", None,
            "Remote environment cache shared by every node of a deployment: "
            "https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX][?SAS]. A miss is built "
            "once (a blob lease) and published; other nodes restore it (docs/scale-out.md). "
            "Needs the [remote] extra.",
            parse=_remote_url),
    Setting("remote_wait", "EXTENSIBILITY_REMOTE_WAIT", "120",
            "Seconds a start waits for another node that is building the same environment "
            "to publish it, before building it here (the default leaves a local build most "
            "of the 300 s Azure ML's default liveness probe allows).",
            parse=_seconds),
    Setting("install_timeout", "EXTENSIBILITY_INSTALL_TIMEOUT", "1800",
            "Seconds an installer may run before it is stopped and the start fails (exit 95).",
            parse=_seconds),
    Setting("retries", "EXTENSIBILITY_RETRIES", "3",
            "HTTP retries of the installer for each download (pip --retries, UV_HTTP_RETRIES), "
            "unless the user's PIP_RETRIES / UV_HTTP_RETRIES say otherwise.",
            parse=_count),
    Setting("gc_max_age", "EXTENSIBILITY_GC_MAX_AGE", None,
            "Automatic clean-up after a build: remove environments unused for longer than this "
            "(e.g. 30d, 12h, 3600). Unset: no automatic clean-up by age.",
            parse=_seconds),
    Setting("gc_max_size", "EXTENSIBILITY_GC_MAX_SIZE", None,
            "Automatic clean-up after a build: remove least-recently-used environments until "
            "the cache fits this size (e.g. 20G, 500M). Unset: no size budget.",
            parse=_size),
    Setting("gc_min_idle", "EXTENSIBILITY_GC_MIN_IDLE", "10m",
            "Never remove an environment used more recently than this, even if it looks idle.",
            parse=_seconds),
    Setting("log_format", "EXTENSIBILITY_LOG_FORMAT", "text",
            "Log format on stderr: text (one line per phase) or json (JSON lines).",
            choices=LOG_FORMATS),
)
