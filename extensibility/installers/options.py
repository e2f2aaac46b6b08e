"""Index options of a requirements file as command-line flags of each installer."""

from __future__ import annotations

from extensibility.requirements import IndexOptions

# option attribute -> (pip flag, uv flag); None: the installer has no equivalent
_REPEATED = {
    "extra_index_urls": ("--extra-index-url", "--extra-index-url"),
    "find_links": ("--find-links", "--find-links"),
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


def _flags(options: IndexOptions, which: int) -> list[str]:
    flags: list[str] = []
    if options.index_url:
        flags += ["--index-url", options.index_url]
    for attribute, names in _REPEATED.items():
        for value in getattr(options, attribute):
            flags += [names[which], value]
    for attribute, switch in _SWITCHES.items():
        if getattr(options, attribute):
            flags += switch[which]
    return flags


def pip_flags(options: IndexOptions) -> list[str]:
    return _flags(options, 0)


def uv_flags(options: IndexOptions) -> list[str]:
    return _flags(options, 1)
