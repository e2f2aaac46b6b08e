"""Index options of a requirements file as each installer's flags and variables.

Package sources (index URLs, find-links) may carry credentials, and another local user can
read any process's argv: they are given to the installer as environment variables (readable
only by the same user), the way pip's and uv's documentation suggest for secrets. A source
the request names joins the user's own variable of that name (an index URL replaces it).
"""

from __future__ import annotations

from collections.abc import Mapping

from extensibility.installers.config import join_sources, split_sources
from extensibility.requirements import IndexOptions

# option attribute -> (pip flag, uv flag): values without secrets
_REPEATED = {
    "trusted_hosts": ("--trusted-host", "--allow-insecure-host"),
    "only_binary": ("--only-binary", "--only-binary"),
    "no_binary": ("--no-binary", "--no-binary"),
}
_SWITCHES: dict[str, tuple[list[str], list[str]]] = {
    "no_index": (["--no-index"], ["--no-index"]),
    "pre": (["--pre"], ["--prerelease", "allow"]),
    "require_hashes": (["--require-hashes"], ["--require-hashes"]),
    # uv already prefers wheels it can use: --prefer-binary has no uv equivalent
    "prefer_binary": (["--prefer-binary"], []),
}
# source attribute -> (pip variable, uv variable)
_SOURCES = {
    "index_url": ("PIP_INDEX_URL", "UV_INDEX_URL"),
    "extra_index_urls": ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"),
    "find_links": ("PIP_FIND_LINKS", "UV_FIND_LINKS"),
}


def _flags(options: IndexOptions, which: int) -> list[str]:
    flags: list[str] = []
    for attribute, names in _REPEATED.items():
        for value in getattr(options, attribute):
            flags += [names[which], value]
    for attribute, switch in _SWITCHES.items():
        if getattr(options, attribute):
            flags += switch[which]
    return flags


def _sources(options: IndexOptions, which: int, env: Mapping[str, str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for attribute, names in _SOURCES.items():
        value = getattr(options, attribute)
        if not value:
            continue
        name = names[which]
        if isinstance(value, str):  # the index URL: the request's replaces the user's
            variables[name] = value
        else:  # joined the way the installer splits that variable (not always white space)
            variables[name] = join_sources(name, [*split_sources(name, env.get(name, "")),
                                                  *value])
    return variables


def pip_flags(options: IndexOptions) -> list[str]:
    return _flags(options, 0)


def uv_flags(options: IndexOptions) -> list[str]:
    return _flags(options, 1)


def pip_sources(options: IndexOptions, env: Mapping[str, str]) -> dict[str, str]:
    """The request's package sources as pip's variables, to add to `env`."""
    return _sources(options, 0, env)


def uv_sources(options: IndexOptions, env: Mapping[str, str]) -> dict[str, str]:
    """The request's package sources as uv's variables, to add to `env`."""
    return _sources(options, 1, env)
