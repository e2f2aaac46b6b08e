"""What the installers are told besides the request, all in one place: the user's PIP_*/UV_*
variables and config files (part of the key), the variables that name package sources (the
policy and offline mode look at these), the environment an installer runs with, and the
names of the request files written for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from extensibility.fingerprint import sha256_file
from extensibility.redact import redact_url

# The request files an installer reads, written into the environment's metadata folder
# (the cache keeps them, redacted, to show what was installed).
REQUIREMENTS_FILE = "requirements.txt"
CONSTRAINTS_FILE = "constraints.txt"
DELTA_FILE = "install.txt"  # uv's second step: exactly what its dry run would add
LOCK_FILE = "pylock.toml"  # a lock's selection, as both installers read a lock (PEP 751)
REQUEST_FILES = (REQUIREMENTS_FILE, CONSTRAINTS_FILE, DELTA_FILE, LOCK_FILE)

# Variables that name where packages come from, by role.
INDEX_VARIABLES = ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX")
EXTRA_INDEX_VARIABLES = ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX")
LINK_VARIABLES = ("PIP_FIND_LINKS", "UV_FIND_LINKS")
SOURCE_VARIABLES = (*INDEX_VARIABLES, *EXTRA_INDEX_VARIABLES, *LINK_VARIABLES)

# How each installer splits a variable that lists sources: pip splits every list option's
# variable on white space; uv splits UV_FIND_LINKS on commas and its index lists on white
# space. The single-URL variables (PIP_INDEX_URL, UV_INDEX_URL, UV_DEFAULT_INDEX) are not split.
LIST_SEPARATORS = {"PIP_EXTRA_INDEX_URL": " ", "PIP_FIND_LINKS": " ", "UV_EXTRA_INDEX_URL": " ",
                   "UV_INDEX": " ", "UV_FIND_LINKS": ","}


def split_sources(name: str, value: str) -> list[str]:
    """The sources a variable names, as its installer reads it."""
    separator = LIST_SEPARATORS.get(name)
    if separator is None:
        return [value.strip()] if value.strip() else []
    parts = value.split(separator) if separator != " " else value.split()
    return [part.strip() for part in parts if part.strip()]


def join_sources(name: str, sources: list[str]) -> str:
    """A list variable's value for `sources`, joined the way its installer splits it. A
    source holding the separator (a folder with a space, for pip) is given as a file: URL,
    which spells it percent-encoded; both installers read those."""
    separator = LIST_SEPARATORS[name]
    return separator.join(_unsplittable(source, separator) for source in sources)


def _unsplittable(source: str, separator: str) -> str:
    holds = any(c.isspace() for c in source) if separator == " " else separator in source
    if not holds:
        return source
    if "://" not in source:
        return Path(source).absolute().as_uri()
    from urllib.parse import quote

    return quote(source, safe=":/?#[]@!$&'()*+;=%")  # a URL: only the separator is encoded


# Installer variables that change how it talks or prints, not what it installs.
_PRESENTATION_VARIABLES = {
    "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT", "PIP_PROGRESS_BAR", "PIP_DEFAULT_TIMEOUT",
    "PIP_TIMEOUT", "PIP_RETRIES", "PIP_NO_COLOR", "PIP_QUIET", "PIP_VERBOSE", "PIP_LOG",
    "PIP_CACHE_DIR", "PIP_NO_CACHE_DIR", "PIP_ROOT_USER_ACTION", "PIP_CERT", "PIP_CLIENT_CERT",
    "UV_CACHE_DIR", "UV_NO_CACHE", "UV_NO_PROGRESS", "UV_CONCURRENT_DOWNLOADS",
    "UV_CONCURRENT_BUILDS", "UV_CONCURRENT_INSTALLS", "UV_HTTP_TIMEOUT", "UV_LINK_MODE",
    "UV_NATIVE_TLS", "UV_COLOR", "UV_NO_WRAP",
}

# The standard pip variables a user sets for a private index, and uv's names for them: with
# uv as the installer they are passed on under uv's name unless the uv one is set too.
PIP_TO_UV = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS": "UV_FIND_LINKS",
    "PIP_TRUSTED_HOST": "UV_INSECURE_HOST",
    "PIP_CERT": "SSL_CERT_FILE",
    "PIP_CLIENT_CERT": "SSL_CLIENT_CERT",
}


# With a policy rule on, the installers see only configuration the policy has checked: the
# source variables (checked like the request's own options), how they print, and switches
# that cannot name a source. Everything else PIP_*/UV_* (config files, UV_OVERRIDE,
# constraint files, index strategies, ...) is not passed on, and no config file is read.
_CHECKED_VARIABLES = {
    *SOURCE_VARIABLES, *_PRESENTATION_VARIABLES, "PIP_TRUSTED_HOST", "UV_INSECURE_HOST",
    "PIP_PRE", "UV_PRERELEASE", "PIP_NO_INDEX", "UV_NO_INDEX", "PIP_REQUIRE_HASHES",
    "UV_REQUIRE_HASHES", "PIP_ONLY_BINARY", "UV_ONLY_BINARY", "PIP_NO_BINARY", "UV_NO_BINARY",
    "PIP_PREFER_BINARY", "UV_PYTHON_DOWNLOADS",
}


def _already_checked_only(name: str, value: str) -> bool:
    """What a policy run sets anyway (a hermetic set-up has these)."""
    return (name, value) in (("PIP_CONFIG_FILE", os.devnull), ("UV_NO_CONFIG", "1"))


def unchecked_variables(env: Mapping[str, str]) -> list[str]:
    """The user's PIP_*/UV_* variables a policy run does not pass on."""
    return sorted(k for k, v in env.items() if k.startswith(("PIP_", "UV_"))
                  and k not in _CHECKED_VARIABLES and not _already_checked_only(k, v))


def translated_variables(installer: str, env: Mapping[str, str]) -> dict[str, str]:
    """What uv should see of the user's pip settings (nothing for pip)."""
    if installer != "uv":
        return {}
    translated = {uv: env[pip] for pip, uv in PIP_TO_UV.items() if env.get(pip) and not env.get(uv)}
    if "UV_FIND_LINKS" in translated:  # pip's list is split on white space, uv's on commas
        translated["UV_FIND_LINKS"] = join_sources(
            "UV_FIND_LINKS", split_sources("PIP_FIND_LINKS", translated["UV_FIND_LINKS"]))
    return translated


def without_sources(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with no variable naming a package source (offline mode)."""
    return {k: v for k, v in env.items() if k not in SOURCE_VARIABLES}


def installer_settings(installer: str, env: Mapping[str, str]) -> dict[str, object]:
    """The user's installer configuration that can change the result: PIP_*/UV_* variables
    (URLs redacted) and the contents of the config files the installer would read."""
    prefix = "UV_" if installer == "uv" else "PIP_"
    effective = {**env, **translated_variables(installer, env)}
    variables = {name: redact_url(value) for name, value in sorted(effective.items())
                 if name.startswith(prefix) and name not in _PRESENTATION_VARIABLES}
    files = {str(p): digest for p in _config_files(installer, env)
             if (digest := _digest_if_file(p)) is not None}
    # constraint files named by variables change the result by their content, not their path
    for name in ("UV_CONSTRAINT", "UV_OVERRIDE") if installer == "uv" else ("PIP_CONSTRAINT",):
        for path in map(Path, effective.get(name, "").split()):
            digest = _digest_if_file(path)
            if digest is not None:
                files[str(path)] = digest
    return {"variables": variables, "config_files": files}


def installer_environment(env: Mapping[str, str], installer: str, downloads: Path,
                          retries: int, *, offline: bool, checked_only: bool) -> dict[str, str]:
    """The user's environment, plus what the user did not choose: a download cache beside
    our environments (HOME may be missing or read-only for a container's user, and a cache on
    the same volume lets uv link files instead of copying them), our retry count, and for uv
    the user's PIP_* index settings under uv's names (`downloads`: the store's folder for
    the caches). `checked_only` (a policy rule is on): no config file and only the variables
    the policy checks (see `_CHECKED_VARIABLES`)."""
    result = without_sources(env) if offline else dict(env)
    if checked_only:
        for name in unchecked_variables(result):
            del result[name]
        result.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1")
    result.update(translated_variables(installer, result))
    result.setdefault("PIP_RETRIES", str(retries))
    result.setdefault("UV_HTTP_RETRIES", str(retries))
    if not (env.get("UV_CACHE_DIR") or env.get("UV_NO_CACHE")):
        result["UV_CACHE_DIR"] = str(downloads / "uv")
    if not (env.get("PIP_CACHE_DIR") or env.get("PIP_NO_CACHE_DIR")):
        result["PIP_CACHE_DIR"] = str(downloads / "pip")
    return result


def _digest_if_file(path: Path) -> str | None:
    """A config file's digest; None when it is missing, unreadable or not a regular file
    (an unreadable HOME, a FIFO: the installer cannot read it either)."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def _config_files(installer: str, env: Mapping[str, str]) -> list[Path]:
    home = Path(env.get("HOME", "/nonexistent"))
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    config_dirs = [Path(d) for d in env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep) if d]
    if installer == "uv":
        if env.get("UV_NO_CONFIG"):
            return []
        if env.get("UV_CONFIG_FILE"):
            return [Path(env["UV_CONFIG_FILE"])]
        return [config_home / "uv" / "uv.toml", *(d / "uv" / "uv.toml" for d in config_dirs),
                Path("/etc/uv/uv.toml")]
    if env.get("PIP_CONFIG_FILE") == os.devnull:
        return []  # pip then reads no configuration file at all
    # pip reads the global and user files, then PIP_CONFIG_FILE on top of them
    files = [*(d / "pip" / "pip.conf" for d in config_dirs), Path("/etc/pip.conf"),
             home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    return files + ([Path(env["PIP_CONFIG_FILE"])] if env.get("PIP_CONFIG_FILE") else [])
