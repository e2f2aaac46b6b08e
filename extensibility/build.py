"""The cold path's second half: make the environment for a resolved request, once.

`ensure_environment`: in-use lock, lookup, build lock, lookup again, build, marker.
`_build` is one sequence: layout -> install -> change lines -> check -> activation ->
publish (the marker last). Nothing half-built survives: a failure or SIGTERM removes it.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from extensibility import safety
from extensibility.errors import BuildInterrupted, CheckFailed, InstallFailed
from extensibility.faults import pause
from extensibility.installers.config import (
    REQUEST_FILES,
    REQUIREMENTS_FILE,
    installer_environment,
    unchecked_variables,
)
from extensibility.key import canonical_json
from extensibility.layouts import Layout, OverlayLayout, Site
from extensibility.log import VERBOSE, Log
from extensibility.offline import explain_missing, wheelhouse_folder
from extensibility.protection import conflict_error
from extensibility.resolve import Resolved, miss_reason
from extensibility.settings import ProtectMode
from extensibility.start import Start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from extensibility.remote.cache import Claim, RemoteCache
    from extensibility.requirements import RequirementsSpec


def ensure_environment(start: Start, resolved: Resolved, log: Log
                       ) -> tuple[Path, Claim | None]:
    """The environment for `resolved`: the cached one, or a new one built here; and, when
    this start built it under the remote cache's lease, the claim the command publishes
    (remote/publish.py) -- None otherwise.

    Holds the environment's in-use lock from here through `exec` (see Store.hold)."""
    store, key, settings = start.store, resolved.key, start.settings
    try:
        store.hold(key)
    except OSError as exc:
        raise _os_failure(exc, settings.cache_dir) from exc
    found = store.lookup(key)  # again, under the in-use lock: a clean-up may have run
    if found is not None:
        store.touch(key)
        return found, None
    remote = _open_remote(start, resolved, log)  # on a local miss only
    reason = miss_reason(start, resolved)
    log.phase("cache", f"{key} is not on this node: {reason}" if remote is not None
              else f"building {key}: {reason}")
    claim: Claim | None = None
    try:
        with store.lock(key, settings.lock_timeout, log):
            done = store.lookup(key)  # another start may have built it while we waited
            if done is not None:
                log.phase("cache", f"{key} was built by another start meanwhile")
                store.touch(key)
                return done, None
            if store.begin(key):
                log.phase("cache", f"removed the leftover of an interrupted or damaged build "
                          f"of {key}")
            try:
                with _terminate_raises(key):
                    if remote is not None:
                        claim = remote.obtain(store, key, canonical_json(resolved.document),
                                              start.image.python, log)
                        if claim.restored:
                            return store.env_dir(key), None
                    store.journal(event="build-started", key=key)
                    _build(start, resolved, log)
            except BaseException as exc:
                store.discard(key)  # nothing half-built stays under the key
                store.journal(event="build-failed", key=key, error=type(exc).__name__)
                if claim is not None:
                    claim.give_up()  # another node may build it now
                raise
            store.journal(event="build-complete", key=key)
    except OSError as exc:
        raise _os_failure(exc, settings.cache_dir) from exc
    _clean_up(start, log)
    return store.env_dir(key), claim if claim is not None and claim.to_publish else None


def _open_remote(start: Start, resolved: Resolved, log: Log) -> RemoteCache | None:
    """The remote cache for this miss (None: none configured, unusable, or a conda prefix:
    it names its own path in files of every kind, so it is not relocated, nor shared)."""
    if not start.settings.remote_cache:
        return None
    if resolved.conda is not None and resolved.conda.layout is not None:
        log.phase("remote", "a conda prefix is built on each node: only overlay "
                  "environments are published to the remote cache")
        return None
    from extensibility.remote import open_remote

    return open_remote(start.settings, start.env, log)


def layout_for(start: Start, resolved: Resolved) -> Layout:
    """The layout that meets the request: the overlay, unless a conda file needs a prefix."""
    conda = resolved.conda
    if conda is None or conda.layout is None:
        return OverlayLayout(start, resolved)
    from extensibility.conda.layouts import NativePrefixLayout, PythonPrefixLayout
    from extensibility.conda.prefix import CondaLayout

    if conda.layout == CondaLayout.PYTHON:
        return PythonPrefixLayout(start, resolved, conda)
    return NativePrefixLayout(start, resolved, conda)


def _build(start: Start, resolved: Resolved, log: Log) -> None:
    started = time.monotonic()
    store, settings = start.store, start.settings
    root, work_dir = store.env_dir(resolved.key), store.meta_dir(resolved.key)
    layout = layout_for(start, resolved)
    site = layout.create(root, log)
    work_dir.mkdir(parents=True, exist_ok=True)
    pause(start.env, "overlay", log)
    installed = _install(start, site, work_dir, log)
    if not start.compile_at_build:
        from extensibility.compile import prepare_pycache, start_background

        prepare_pycache(root)  # made here, private: the background compile only fills them
        # started now, not at the hand-off: the check and publish take a second on a large
        # set, a head start over the server's own imports (a failed build discards it all)
        start_background(store, root, log, settings.app_root / settings.entry_script)
    log.phase("install", f"{len(installed)} packages in {time.monotonic() - started:.1f} s")
    changes = _changes(site.baseline, site.site_packages)
    for line in changes:
        if site.protection.mode == ProtectMode.OFF and " -> " in line:
            log.warning("change", line)
        else:
            log.phase("change", line)
    from extensibility.activation import apply_activation, write_activation

    activation = layout.activation(root)
    probe_env = {**start.env, "PATH": f"{root / 'bin'}:{start.env.get('PATH', '')}"}
    apply_activation(activation, probe_env, root / "bin")
    _check(settings.install_timeout, site, probe_env, log)
    write_activation(work_dir, activation)
    pause(start.env, "publish", log)
    conda = resolved.conda
    # uv and pip compile while installing; without requirements there is nothing to compile
    compiled = start.compile_at_build or not site.spec.requirements
    store.publish(resolved.key, canonical_json(resolved.document), compiled=compiled, origin={
        "request_file": str(start.request_path),
        "variable": start.request.variable,
        "installer": start.installer,
        "image_python": start.image.python,
        "installed": list(installed),
        "changes": changes,
        "protection": site.protection.describe(),
        "conda": conda.describe() if conda else None,
        "build_seconds": round(time.monotonic() - started, 3),
        "created": time.time(),
        "compiled_at_build": compiled,
    })
    log.phase("cache", f"{resolved.key} complete")


def _install(start: Start, site: Site, work_dir: Path, log: Log) -> tuple[str, ...]:
    """Run the installer for the site's request; returns what went in."""
    if not site.spec.requirements:
        return ()
    from extensibility.installers.base import InstallJob
    from extensibility.installers.choice import make_installer

    settings = start.settings
    downloads = start.store.downloads
    if downloads.is_dir() and safety.clear_unsafe_cache(downloads):
        log.warning("cache", f"{downloads} could be changed by other users: it was cleared "
                    "(it only holds downloads)")
    checked_only = any(settings.policy().values())
    ignored = unchecked_variables(start.env) if checked_only else []
    if ignored:
        log.warning("policy", f"not passed to the installer (the policy does not check them): "
                    f"{', '.join(ignored)}; config files are not read either")
    env = installer_environment(start.env, start.installer, downloads,
                                settings.retries, offline=settings.wheelhouse is not None,
                                checked_only=checked_only)
    hashing = site.spec if _hash_checking(site.spec, env) else None
    job = InstallJob(python=site.python, image_python=site.resolve_python, spec=site.spec,
                     work_dir=work_dir, timeout=settings.install_timeout, env=env,
                     held=tuple(site.protection.constraint_lines(hashing)),
                     isolated=site.isolated,
                     compile=start.compile_at_build, verbose=log.verbosity >= VERBOSE)
    try:
        result = make_installer(start.installer, start.uv_binary).install(job, log)
        if downloads.is_dir():  # what the installers cached is private too (uv's lock files)
            safety.secure_tree(downloads)
    except InstallFailed as failure:
        blamed = _blame_held(site, start.request_path, work_dir, failure)
        wheels = wheelhouse_folder(settings)
        if wheels is not None:
            raise explain_missing(blamed, wheels) from failure
        if blamed is failure:
            raise
        raise blamed from failure
    finally:
        _redact_request_files(work_dir)
    return result.installed


def _hash_checking(spec: RequirementsSpec, env: Mapping[str, str]) -> bool:
    """Whether the installer runs in hash-checking mode (a `--require-hashes` line,
    EXTENSIBILITY_REQUIRE_HASHES, or the user's PIP_/UV_REQUIRE_HASHES)."""
    return spec.options.require_hashes or any(
        env.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")
        for name in ("PIP_REQUIRE_HASHES", "UV_REQUIRE_HASHES"))


def _redact_request_files(work_dir: Path) -> None:
    """The installer needed the request with its credentials; the cache keeps it without."""
    from extensibility.redact import redact_url

    for name in REQUEST_FILES:
        path = work_dir / name
        if path.exists():
            path.write_text(redact_url(path.read_text(encoding="utf-8")), encoding="utf-8")


def _changes(baseline: Mapping[str, str], site_packages: Path) -> list[str]:
    """One line per package the environment adds or overrides (`baseline`: what it saw)."""
    from extensibility.image import scan_distributions

    lines = []
    for name, version in sorted(scan_distributions(str(site_packages))):
        before = baseline.get(name)
        if before is None:
            lines.append(f"+ {name} {version}")
        elif before != version:
            lines.append(f"{name} {before} -> {version} (overrides the image)")
    return lines


def _blame_held(site: Site, request_file: Path, work_dir: Path,
                failure: InstallFailed) -> InstallFailed:
    """A failure where something depends on a held package is a conflict with the server
    (raised, citing the lines involved). Else the failure to report: with the user's lines
    it is about (FILE:LINE), and what an index that refused the credentials answered."""
    from extensibility.blame import depended_on, describe, error_section, index_refusal, involved

    protection = site.protection
    section = error_section(failure.output)
    written = str(work_dir / REQUIREMENTS_FILE)
    named = [h for n, h in protection.held.items() if depended_on(section, n)]
    if named:
        culprits = involved(site.spec, section, written, excluded=protection.held)
        reasons = [f"{h.name} is held to {h.constraint()}: {h.why()}" for h in named]
        conflicts = [(str(r.origin), r.origin.text, reasons) for r in culprits] or \
            [(str(request_file), "the request", reasons)]
        raise conflict_error(protection, conflicts,
                             detail=f"the installer said:\n{failure.message}") from failure
    refused = index_refusal(failure.output)
    lines = involved(site.spec, section, written)
    if refused is None and not lines:
        return failure
    message = failure.message
    if lines:
        message += f"\nthe request's line{'s' if len(lines) > 1 else ''} it names:\n" + \
            describe(lines)
    fix = failure.fix
    if refused is not None:
        status, said = refused
        message += f"\nthe package index answered HTTP {status}: the credentials were " \
            f"refused ({said})"
        fix = ("check the user name and password (or token) of the index URL: PIP_INDEX_URL, "
               "PIP_EXTRA_INDEX_URL (UV_* for uv), or the request's --index-url / "
               "--extra-index-url line; a token may have expired")
    blamed = InstallFailed(message, fix=fix)
    blamed.output = failure.output
    return blamed


def _check(timeout: float, site: Site, env: Mapping[str, str], log: Log) -> None:
    """Before the marker: the server can start in the environment (every mode), and the
    environment with the image is consistent (`off`: inconsistencies are warnings)."""
    from extensibility.boot import describe, describe_failure
    from extensibility.consistency import boot_error, new_problems, start_boot_probe

    protection = site.protection
    boot = start_boot_probe(site.python, protection.module, env) if protection.module else None
    try:
        paths = [str(site.site_packages), *site.base_dirs]
        problems, leftovers = new_problems(paths, list(site.base_dirs),
                                           _replacement_scope(site, paths))
        for leftover in leftovers:
            log.phase("check", f"note: {leftover} (left in the image for the replaced "
                      f"{protection.server}; neither the new server nor the request needs it)")
        if problems and protection.mode != ProtectMode.OFF:
            raise CheckFailed("the environment is inconsistent:\n  " + "\n  ".join(problems),
                              fix="pin versions that satisfy these requirements, or set "
                              "EXTENSIBILITY_PROTECT=off to accept them (at your own risk)")
        for problem in problems:
            log.warning("check", problem)
        error = boot_error(boot, timeout) if boot else None
    finally:
        if boot is not None and boot.poll() is None:  # not needed after a failure
            boot.kill()
            boot.wait()
    if error is not None:
        assert protection.module is not None
        raise CheckFailed(f"the scoring server cannot start in this environment: "
                          f"{describe_failure(protection.module)}:\n{error}",
                          fix="a package of the request breaks a module the server loads at "
                          "boot (named above); pin it to the version the image has, or remove "
                          "it. This fails the build whatever EXTENSIBILITY_PROTECT says")
    proved = describe(protection.module) if boot and protection.module else None
    if problems:
        log.warning("check", f"{len(problems)} dependency conflicts accepted "
                    f"(EXTENSIBILITY_PROTECT=off); " + (proved or "no server to start"))
    else:
        scoped = (f" for what the new {protection.server} and the request need "
                  f"({len(leftovers)} leftovers noted)") if leftovers else ""
        log.phase("check", f"consistent{scoped}" + (f"; {proved}" if proved else ""))


def _replacement_scope(site: Site, paths: list[str]) -> set[str] | None:
    """After the request replaced the server's package: what the new server and the request
    need (the server, the request's names, everything the install added, transitively).
    None (everything counts) when the server was not replaced."""
    protection = site.protection
    if protection.override is None or protection.server is None:
        return None
    from extensibility.consistency import needed_by
    from extensibility.image import scan_distributions

    roots = {protection.server, *(r.name for r in site.spec.requirements if r.name),
             *(name for name, _ in scan_distributions(str(site.site_packages)))}
    return needed_by(paths, roots)


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


def _clean_up(start: Start, log: Log) -> None:
    """Automatic clean-up after a build, when a budget is set (never on the warm path)."""
    settings = start.settings
    if settings.gc_max_age is None and settings.gc_max_size is None:
        return
    from extensibility.cleanup import collect

    removed, _ = collect(start.store, max_age=settings.gc_max_age,
                         max_size=settings.gc_max_size, min_idle=settings.gc_min_idle)
    for removal in removed:
        log.phase("cleanup", f"removed {removal.key} ({removal.size >> 20} MiB): "
                  f"{removal.reason}")


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

