"""The pipeline: request -> spec -> key -> store (hit? done) -> installer -> publish.

`plan_environment` does everything up to the cache lookup and never installs. A start whose
request is unchanged does not even get here: warm.py finds its environment first.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extensibility.conda_prefix import NATIVE_LAYOUT, PYTHON_LAYOUT
from extensibility.errors import BuildInterrupted, CheckFailed, InstallFailed
from extensibility.image import Image, current_image
from extensibility.installers.choice import choose_installer
from extensibility.key import canonical_json, differences, key_document, key_of
from extensibility.log import Log
from extensibility.policy import apply_policy
from extensibility.protection import Protection, conflict
from extensibility.request import CONDA, REQUIREMENTS, Request
from extensibility.requirements import RequirementsSpec, parse_requirements
from extensibility.server_command import server_module
from extensibility.settings import Settings
from extensibility.store import Store
from extensibility.wheelhouse import (
    explain_missing,
    offline,
    offline_environment,
    wheelhouse_folder,
)

if TYPE_CHECKING:
    from extensibility.conda_request import CondaPlan


@dataclass(frozen=True)
class EnvironmentPlan:
    request: Request
    spec: RequirementsSpec | None = None
    image: Image | None = None
    installer: str | None = None
    uv_binary: str | None = None
    document: dict[str, Any] | None = None
    key: str | None = None
    hit: Path | None = None
    server_module: str | None = None
    conda: CondaPlan | None = None


def plan_environment(settings: Settings, request: Request, env: Mapping[str, str], log: Log,
                     command: Sequence[str]) -> EnvironmentPlan:
    """`command` is the server command: its package is what `server` protection holds."""
    if request.kind not in (REQUIREMENTS, CONDA):
        return EnvironmentPlan(request)
    assert request.path is not None
    conda = None
    if request.kind == CONDA:
        from extensibility.conda_request import plan_conda

        conda, spec = plan_conda(settings, request.path, env)
        for line in conda.describe():
            log.phase("conda", line)
    else:
        spec = parse_requirements(request.path, env)
    spec = apply_policy(settings, spec, env)
    wheels = wheelhouse_folder(settings)
    if wheels is not None:
        spec = offline(spec, wheels)
    image = current_image()
    installer, uv_binary = choose_installer(settings.installer)
    module = server_module(command, env.get("PATH", os.defpath), settings.app_root)
    document = key_document(spec, image, installer, env, settings.protect, module,
                            settings.policy(), conda.key_part() if conda else None)
    key = key_of(document)
    hit = Store(settings.cache_dir).lookup(key)
    log.phase("key", f"{key} ({len(spec.requirements)} requirements, "
              f"{len(spec.constraints)} constraints, installer {installer}): "
              f"{'hit' if hit else 'miss'}")
    return EnvironmentPlan(request, spec, image, installer, uv_binary, document, key, hit,
                           module, conda)


def miss_reason(settings: Settings, plan: EnvironmentPlan) -> str:
    """Why there is no environment: compares with the last one built for the same file."""
    assert plan.document is not None and plan.key is not None
    store = Store(settings.cache_dir)
    if store.damaged(plan.key):
        return f"environment {plan.key} is damaged (its interpreter is missing): rebuilding"
    previous = [e for e in store.entries()
                if e.complete and e.document and e.origin
                and e.origin.get("request_file") == str(plan.request.path)]
    if not previous:
        return "no environment was built for this request before"
    latest = max(previous, key=lambda e: e.last_access or 0.0)
    assert latest.document is not None
    changed = differences(latest.document, plan.document)
    return f"changed since environment {latest.key}: {'; '.join(changed)}"


def ensure_environment(settings: Settings, plan: EnvironmentPlan, env: Mapping[str, str],
                       log: Log) -> Path:
    """The overlay for a requirements request: the cached one, or a new one built here.

    Holds the environment's in-use lock from here through `exec` (see Store.hold)."""
    assert plan.key is not None and plan.document is not None
    store = Store(settings.cache_dir)
    try:
        store.hold(plan.key)
    except OSError as exc:
        raise _os_failure(exc, settings.cache_dir) from exc
    found = store.lookup(plan.key)  # again, under the in-use lock: a clean-up may have run
    if found is not None:
        store.touch(plan.key)
        return found
    log.phase("cache", f"building {plan.key}: {miss_reason(settings, plan)}")
    try:
        with store.lock(plan.key, settings.lock_timeout, log):
            done = store.lookup(plan.key)  # another start may have built it while we waited
            if done is not None:
                log.phase("cache", f"{plan.key} was built by another start meanwhile")
                store.touch(plan.key)
                return done
            if store.begin(plan.key):
                log.phase("cache", f"removed the leftover of an interrupted or damaged build "
                          f"of {plan.key}")
            root = store.env_dir(plan.key)
            store.journal(event="build-started", key=plan.key)
            try:
                with _terminate_raises(plan.key):
                    _build(settings, plan, store, root, env, log)
            except BaseException as exc:
                store.discard(plan.key)  # nothing half-built stays under the key
                store.journal(event="build-failed", key=plan.key, error=type(exc).__name__)
                raise
            store.journal(event="build-complete", key=plan.key)
    except OSError as exc:
        raise _os_failure(exc, settings.cache_dir) from exc
    _clean_up(settings, store, log)
    return root


def _build(settings: Settings, plan: EnvironmentPlan, store: Store, root: Path,
           env: Mapping[str, str], log: Log) -> None:
    assert plan.spec is not None and plan.image is not None and plan.installer is not None
    assert plan.key is not None and plan.document is not None
    # imported here: the warm path never builds, so it never pays for these
    from extensibility.activation import write_activation
    from extensibility.installers.base import InstallJob, make_installer
    from extensibility.overlay import create_overlay, overlay_site_packages
    from extensibility.protection import check_request, resolve_protection

    started = time.monotonic()
    work_dir = store.meta_dir(plan.key)
    layout = plan.conda.layout if plan.conda else None
    spec = plan.spec
    if layout == PYTHON_LAYOUT:
        from extensibility.conda_build import python_layout

        assert plan.conda is not None
        python, protection, spec, site_packages = python_layout(
            settings, plan.conda, plan.spec, plan.image, plan.server_module, root, log)
        baseline: Mapping[str, str] = {}
        base_dirs: tuple[str, ...] = ()
    else:
        protection = resolve_protection(settings.protect, plan.server_module, plan.image)
        log.phase("protect", protection.describe())
        check_request(protection, spec)  # a direct conflict fails before any install
        python = create_overlay(root, plan.image)
        site_packages = overlay_site_packages(root)
        baseline, base_dirs = plan.image.distributions, plan.image.site_dirs
        log.phase("install", f"overlay created at {root}")
        if layout == NATIVE_LAYOUT:
            from extensibility.conda_build import native_layout

            assert plan.conda is not None
            native_layout(settings, plan.conda, root, log)
    work_dir.mkdir(parents=True, exist_ok=True)
    _fault_pause(settings, "overlay", log)
    installer = make_installer(plan.installer, plan.uv_binary)
    job = InstallJob(python=python, image=plan.image,
                     image_python=str(python) if layout == PYTHON_LAYOUT else sys.executable,
                     spec=spec, work_dir=work_dir, timeout=settings.install_timeout,
                     env=installer_environment(env, settings, plan.installer),
                     held=tuple(protection.constraint_lines()),
                     isolated=layout == PYTHON_LAYOUT)
    try:
        result = installer.install(job, log) if spec.requirements else None
    except InstallFailed as failure:
        _blame_held(protection, plan, failure)
        wheels = wheelhouse_folder(settings)
        if wheels is not None:
            raise explain_missing(failure, wheels) from failure
        raise
    _redact_request_files(work_dir)
    installed = result.installed if result else ()
    seconds = time.monotonic() - started
    log.phase("install", f"{len(installed)} packages in {seconds:.1f} s")
    changes = _changes(baseline, site_packages)
    for line in changes:
        if protection.mode == "off" and " -> " in line:
            log.warning("change", line)
        else:
            log.phase("change", line)
    _check(settings, protection, python, site_packages, base_dirs, log)
    if plan.conda is not None:
        from extensibility.conda_build import activation_for

        write_activation(work_dir, activation_for(plan.conda, root))
    _fault_pause(settings, "publish", log)
    store.publish(plan.key, canonical_json(plan.document), {
        "request_file": str(plan.request.path),
        "variable": plan.request.variable,
        "installer": plan.installer,
        "image_python": sys.executable,
        "installed": list(installed),
        "changes": changes,
        "protection": protection.describe(),
        "conda": plan.conda.describe() if plan.conda else None,
        "build_seconds": round(time.monotonic() - started, 3),
        "created": time.time(),
    })
    log.phase("cache", f"{plan.key} complete")


def _redact_request_files(work_dir: Path) -> None:
    """The installer needed the request with its credentials; the cache keeps it without."""
    from extensibility.redact import redact_url

    for name in ("requirements.txt", "constraints.txt", "install.txt"):
        path = work_dir / name
        if path.exists():
            path.write_text(redact_url(path.read_text(encoding="utf-8")), encoding="utf-8")


def _changes(baseline: Mapping[str, str], site_packages: Path) -> list[str]:
    """One line per package the overlay adds or overrides (`baseline`: the image's)."""
    from extensibility.image import scan_distributions

    lines = []
    for name, version in sorted(scan_distributions(str(site_packages))):
        before = baseline.get(name)
        if before is None:
            lines.append(f"+ {name} {version}")
        elif before != version:
            lines.append(f"{name} {before} -> {version} (overrides the image)")
    return lines


def _blame_held(protection: Protection, plan: EnvironmentPlan, failure: InstallFailed) -> None:
    """An installer failure that names held packages is a conflict with the server; the
    user's lines the installer names are cited (file and line)."""
    assert plan.spec is not None
    named = [h for n, h in protection.held.items() if _mentions(failure.message, n)]
    if not named:
        return
    culprits = [r for r in plan.spec.requirements
                if r.name and r.name not in protection.held and _mentions(failure.message, r.name)]
    where = ", ".join(str(r.origin) for r in culprits) or str(plan.request.path)
    text = "; ".join(r.origin.text for r in culprits) or "the request"
    raise conflict(protection, where, text, named,
                   detail=f"the installer said:\n{failure.message}") from failure


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE) is not None


def _check(settings: Settings, protection: Protection, python: Path, site_packages: Path,
           base_dirs: Sequence[str], log: Log) -> None:
    """Before the marker: overlay + image consistent, and the server still imports."""
    from extensibility.consistency import new_problems, smoke_import_error, start_smoke_import

    smoke = start_smoke_import(python, protection.module) if protection.module else None
    try:
        problems = new_problems([str(site_packages), *base_dirs], list(base_dirs))
        if problems and protection.mode != "off":
            raise CheckFailed("the environment is inconsistent:\n  " + "\n  ".join(problems),
                              fix="pin versions that satisfy these requirements, or set "
                              "EXTENSIBILITY_PROTECT=off to accept them (at your own risk)")
        for problem in problems:
            log.warning("check", problem)
        error = smoke_import_error(smoke, settings.install_timeout) if smoke else None
    finally:
        if smoke is not None and smoke.poll() is None:  # not needed after a failure
            smoke.kill()
            smoke.wait()
    if error is not None:
        raise CheckFailed(f"the scoring server no longer imports in this environment "
                          f"(import {protection.module}):\n{error}",
                          fix="a package of the request shadows or breaks a module the "
                          "server needs; remove or change it")
    log.phase("check", f"consistent; import {protection.module} works" if smoke
              else "consistent")


@contextlib.contextmanager
def _terminate_raises(key: str) -> Iterator[None]:
    """SIGTERM during a build (a pod being stopped) unwinds like an error: the installer is
    killed, the partial environment removed, and the start exits 143."""

    def terminate(signum: int, frame: object) -> None:
        raise BuildInterrupted(f"stopped by signal {signum} while building {key}; the partial "
                               "environment was removed")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fault_pause(settings: Settings, phase: str, log: Log) -> None:
    """Fault injection for the crash tests: stop here until killed."""
    if settings.fault_pause == phase:
        log.phase("fault", f"paused before {phase} (EXTENSIBILITY_FAULT_PAUSE)")
        while True:
            time.sleep(3600)


def _clean_up(settings: Settings, store: Store, log: Log) -> None:
    """Automatic clean-up after a build, when a budget is set (never on the warm path)."""
    if settings.gc_max_age is None and settings.gc_max_size is None:
        return
    from extensibility.cleanup import collect

    removed, _ = collect(store, max_age=settings.gc_max_age, max_size=settings.gc_max_size,
                         min_idle=settings.gc_min_idle)
    for removal in removed:
        log.phase("cleanup", f"removed {removal.key} ({removal.size >> 20} MiB): "
                  f"{removal.reason}")


def installer_environment(env: Mapping[str, str], settings: Settings,
                          installer: str) -> dict[str, str]:
    """The user's environment, plus what the user did not choose: a download cache beside
    our environments (HOME may be missing or read-only for a container's user, and a cache on
    the same volume lets uv link files instead of copying them), our retry count, and for uv
    the user's PIP_* index settings under uv's names."""
    from extensibility.installer_config import translated_variables

    cache_dir = settings.cache_dir
    result = offline_environment(env) if settings.wheelhouse else dict(env)
    result.update(translated_variables(installer, result))
    result.setdefault("PIP_RETRIES", str(settings.retries))
    result.setdefault("UV_HTTP_RETRIES", str(settings.retries))
    if not (env.get("UV_CACHE_DIR") or env.get("UV_NO_CACHE")):
        result["UV_CACHE_DIR"] = str(cache_dir / "downloads" / "uv")
    if not (env.get("PIP_CACHE_DIR") or env.get("PIP_NO_CACHE_DIR")):
        result["PIP_CACHE_DIR"] = str(cache_dir / "downloads" / "pip")
    return result


def _os_failure(exc: OSError, cache_dir: Path) -> InstallFailed:
    if exc.errno == errno.ENOSPC:
        return InstallFailed(f"no space left in {cache_dir} while building the environment",
                             fix="free space on that volume, or point EXTENSIBILITY_CACHE_DIR "
                             "at a larger one")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InstallFailed(f"cannot write the environment: {exc}",
                             fix="make EXTENSIBILITY_CACHE_DIR writable by this user, or point "
                             "it at a writable folder")
    return InstallFailed(f"building the environment failed: {exc}")
