"""Index options of a requirements file as command-line flags of each installer."""

from __future__ import annotations

from extensibility.requirements import IndexOptions


def pip_flags(options: IndexOptions) -> list[str]:
    flags: list[str] = []
    if options.index_url:
        flags += ["--index-url", options.index_url]
    for url in options.extra_index_urls:
        flags += ["--extra-index-url", url]
    for link in options.find_links:
        flags += ["--find-links", link]
    for host in options.trusted_hosts:
        flags += ["--trusted-host", host]
    for value in options.only_binary:
        flags += ["--only-binary", value]
    for value in options.no_binary:
        flags += ["--no-binary", value]
    flags += [flag for flag, on in (("--no-index", options.no_index), ("--pre", options.pre),
                                    ("--require-hashes", options.require_hashes),
                                    ("--prefer-binary", options.prefer_binary)) if on]
    return flags


def uv_flags(options: IndexOptions) -> list[str]:
    flags: list[str] = []
    if options.index_url:
        flags += ["--index-url", options.index_url]
    for url in options.extra_index_urls:
        flags += ["--extra-index-url", url]
    for link in options.find_links:
        flags += ["--find-links", link]
    for host in options.trusted_hosts:
        flags += ["--allow-insecure-host", host]
    for value in options.only_binary:
        flags += ["--only-binary", value]
    for value in options.no_binary:
        flags += ["--no-binary", value]
    if options.no_index:
        flags.append("--no-index")
    if options.pre:
        flags += ["--prerelease", "allow"]
    if options.require_hashes:
        flags.append("--require-hashes")
    # --prefer-binary has no uv equivalent: uv already prefers wheels it can use
    return flags
