"""Supply-chain policy, off by default: checked on the parsed request before any network access.

Rules (each enabled by its variable, docs/security.md):
- EXTENSIBILITY_REQUIRE_HASHES: every requirement pinned with `==` and `--hash`;
- EXTENSIBILITY_ALLOWED_INDEX_HOSTS: indexes, find-links and URL requirements only there;
- EXTENSIBILITY_NO_EXTRA_INDEX: no `--extra-index-url` (dependency confusion);
- EXTENSIBILITY_NO_DIRECT_REFERENCES: no URL, VCS or local-path requirements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from urllib.parse import urlsplit

from extensibility.errors import PolicyViolation
from extensibility.installers.config import (
    EXTRA_INDEX_VARIABLES,
    INDEX_VARIABLES,
    LINK_VARIABLES,
    SOURCE_VARIABLES,
    split_sources,
)
from extensibility.redact import redact_url
from extensibility.requirements import Requirement, RequirementsSpec
from extensibility.settings import Settings

DEFAULT_INDEX_HOST = "pypi.org"
_PINNED_RE = re.compile(r"^[A-Za-z0-9._-]+(\[[^\]]*\])?\s*===?\s*[^,;*\s]+\s*(;.*)?$")


def apply_policy(settings: Settings, spec: RequirementsSpec,
                 env: Mapping[str, str]) -> RequirementsSpec:
    """Refuse what the enabled rules forbid; with hashes required, turn on hash checking."""
    if settings.no_direct_references:
        for requirement in spec.requirements + spec.constraints:
            if _is_direct(requirement):
                raise _violation(f"{requirement.origin}", requirement.origin.text,
                                 "EXTENSIBILITY_NO_DIRECT_REFERENCES",
                                 "a URL, VCS or local-path requirement",
                                 "name the package and take it from the allowed index")
        for where, text, _ in _local_links(spec, env):
            raise _violation(where, text, "EXTENSIBILITY_NO_DIRECT_REFERENCES",
                             "a local folder of packages (find-links) installs local artifacts",
                             "take the packages from the allowed index, or mount them as "
                             "EXTENSIBILITY_WHEELHOUSE (the operator's offline folder)")
    if settings.require_hashes:
        for requirement in spec.requirements:
            pinned = requirement.name is None or requirement.version is not None or \
                _PINNED_RE.match(requirement.install_text)
            if not requirement.hashes or not pinned:
                raise _violation(f"{requirement.origin}", requirement.origin.text,
                                 "EXTENSIBILITY_REQUIRE_HASHES", "not pinned with == and --hash",
                                 "pin every requirement, its dependencies included, as "
                                 "NAME==VERSION --hash=sha256:... (pip-compile "
                                 "--generate-hashes or uv pip compile --generate-hashes)")
    if settings.no_extra_index:
        for where, text in _extra_indexes(spec, env):
            raise _violation(where, text, "EXTENSIBILITY_NO_EXTRA_INDEX",
                             "an extra index next to the main one",
                             "publish every package to one index and use only --index-url")
    if settings.allowed_index_hosts is not None:
        allowed = set(settings.allowed_index_hosts)
        for where, text, _ in _local_links(spec, env):
            raise _violation(where, text, "EXTENSIBILITY_ALLOWED_INDEX_HOSTS",
                             "a local folder of packages (find-links) is on no allowed host",
                             "take the packages from an allowed index, or mount them as "
                             "EXTENSIBILITY_WHEELHOUSE (the operator's offline folder)")
        for where, text, url in _sources(spec, env):
            host = (urlsplit(url).hostname or "").lower()
            if host not in allowed:
                raise _violation(where, text, "EXTENSIBILITY_ALLOWED_INDEX_HOSTS",
                                 f"host {host or '(none)'} is not in "
                                 f"{', '.join(sorted(allowed))}",
                                 "use an allowed index, or add the host to the list")
    if settings.require_hashes and not spec.options.require_hashes:
        return replace(spec, options=replace(spec.options, require_hashes=True))
    return spec


def _local_links(spec: RequirementsSpec,
                 env: Mapping[str, str]) -> Iterator[tuple[str, str, str]]:
    """(where, text, path) of every find-links folder on this machine, not behind a URL."""
    for attribute, value, origin in spec.option_lines:
        if attribute == "find_links" and value and ("://" not in value or
                                                    value.startswith("file:")):
            yield str(origin), origin.text, value
    for variable in LINK_VARIABLES:
        for path in split_sources(variable, env.get(variable, "")):
            if "://" not in path or path.startswith("file:"):
                yield f"the environment variable {variable}", path, path


def _is_direct(requirement: Requirement) -> bool:
    if requirement.version is not None and requirement.local is None:
        return " @ " in requirement.key_text  # a lock's archive; its index files are not
    return requirement.name is None or requirement.local is not None or " @ " in \
        requirement.install_text or "://" in requirement.install_text


def _extra_indexes(spec: RequirementsSpec, env: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    for attribute, _, origin in spec.option_lines:
        if attribute == "extra_index_urls":
            yield str(origin), origin.text
    for variable in EXTRA_INDEX_VARIABLES:
        if env.get(variable):
            yield f"the environment variable {variable}", redact_url(env[variable])


def _sources(spec: RequirementsSpec,
             env: Mapping[str, str]) -> Iterator[tuple[str, str, str]]:
    """(where, text, URL) of every place packages may come from."""
    file_index = False
    for attribute, value, origin in spec.option_lines:
        if attribute in ("index_url", "extra_index_urls") and value:
            file_index = file_index or attribute == "index_url"
            yield str(origin), origin.text, value
        elif attribute == "find_links" and value and "://" in value and \
                not value.startswith("file:"):
            yield str(origin), origin.text, value
    env_index = False
    for variable in SOURCE_VARIABLES:
        for url in split_sources(variable, env.get(variable, "")):
            if "://" in url:
                env_index = env_index or variable in INDEX_VARIABLES
                yield f"the environment variable {variable}", redact_url(url), url
    if not (file_index or env_index or spec.options.no_index):
        yield "the default index", f"https://{DEFAULT_INDEX_HOST}/simple", \
            f"https://{DEFAULT_INDEX_HOST}/simple"
    for requirement in spec.requirements + spec.constraints:
        if "://" in requirement.install_text and requirement.local is None:
            url = requirement.install_text.split(" @ ")[-1].split(";")[0].strip()
            yield str(requirement.origin), requirement.origin.text, url.removeprefix("git+")


def _violation(where: str, text: str, rule: str, reason: str, fix: str) -> PolicyViolation:
    return PolicyViolation(f"{where}: {redact_url(text)!r} is refused by {rule}: {reason}",
                           fix=f"{fix}; or unset {rule}")
