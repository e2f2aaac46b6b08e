"""Offline installs: EXTENSIBILITY_WHEELHOUSE replaces every package source of the request."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from extensibility.errors import InstallFailed, RequestInvalid
from extensibility.fingerprint import fingerprint_wheelhouse
from extensibility.requirements import RequirementsSpec
from extensibility.settings import Settings


def wheelhouse_folder(settings: Settings) -> Path | None:
    if not settings.wheelhouse:
        return None
    folder = settings.entry_script_dir / settings.wheelhouse  # an absolute value stays so
    if not folder.is_dir():
        raise RequestInvalid(f"EXTENSIBILITY_WHEELHOUSE={settings.wheelhouse!r}: folder "
                             f"{folder} does not exist",
                             fix="mount the wheelhouse there (see docs/offline.md), or fix the "
                             "path; it is relative to the entry-script folder")
    return folder.absolute()


def offline(spec: RequirementsSpec, folder: Path) -> RequirementsSpec:
    """The request with the wheelhouse as its only source; its listing joins the key."""
    options = replace(spec.options, index_url=None, extra_index_urls=(), trusted_hosts=(),
                      find_links=(str(folder),), no_index=True)
    inputs = {**spec.local_inputs, str(folder): fingerprint_wheelhouse(folder)}
    return replace(spec, options=options, local_inputs=inputs)


def explain_missing(failure: InstallFailed, folder: Path) -> InstallFailed:
    """Add what the wheelhouse would need: the wheel tags this interpreter accepts."""
    from packaging.tags import sys_tags

    tags = [str(t) for t in sys_tags()]
    shown = ", ".join(tags[:3])
    return InstallFailed(
        f"{failure.message}\nthe wheelhouse {folder} lacks a wheel the request needs (named "
        f"above); this interpreter accepts wheels tagged {shown}, ... ({len(tags)} tags, down "
        "to py3-none-any)",
        fix="add the missing wheels, built for this image: `extensibility wheelhouse -r "
        "requirements.txt -o DIR` (inside the image, or with --python-version/--platform/--abi)")
