"""`extensibility gc`: remove leftovers, then old, then least-recently-used environments."""

from __future__ import annotations

import argparse

from extensibility.cleanup import collect
from extensibility.commands import Context
from extensibility.settings import parse_duration, parse_size
from extensibility.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from extensibility.remote.commands import RemoteEntry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Remove leftovers of failed builds, then environments unused for longer than "
        "--max-age, then least-recently-used ones until the cache fits --max-size. Never "
        "removes an environment in use, being built, or used within --min-idle.")
    parser.add_argument("--max-age", type=_duration, help="e.g. 30d, 12h, 3600 (default: "
                        "EXTENSIBILITY_GC_MAX_AGE)")
    parser.add_argument("--max-size", type=_size, help="e.g. 20G, 500M (default: "
                        "EXTENSIBILITY_GC_MAX_SIZE)")
    parser.add_argument("--min-idle", type=_duration, help="default: EXTENSIBILITY_GC_MIN_IDLE")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed")
    parser.add_argument("--remote", action="store_true",
                        help="clean EXTENSIBILITY_REMOTE_CACHE instead: published environments "
                        "older than --max-age, then the oldest until it fits --max-size, and "
                        "uploads that never finished (after an hour)")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30d, 12h, 90)") from None


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 20G, 500M)") from None


def main(args: argparse.Namespace, context: Context) -> int:
    if args.remote:
        return _remote(args, context)
    settings, log = context.settings, context.log
    removed, skipped = collect(
        Store(settings.cache_dir),
        max_age=args.max_age if args.max_age is not None else settings.gc_max_age,
        max_size=args.max_size if args.max_size is not None else settings.gc_max_size,
        min_idle=args.min_idle if args.min_idle is not None else settings.gc_min_idle,
        dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for removal in removed:
        log.phase("gc", f"{verb} {removal.key} ({removal.size / 2**20:.1f} MiB): "
                  f"{removal.reason}")
    for skip in skipped:
        log.phase("gc", f"kept {skip.key}: {skip.reason}")
    total = sum(r.size for r in removed)
    log.phase("gc", f"{verb} {len(removed)} environments, {total / 2**20:.1f} MiB")
    return 0


UNFINISHED_AFTER = 3600.0  # an archive without a manifest this old is an upload that died


def _remote(args: argparse.Namespace, context: Context) -> int:
    from extensibility.remote.commands import age, entries, remove, require_remote

    remote, log = require_remote(context), context.log
    listed = entries(remote)  # oldest first
    doomed: list[tuple[RemoteEntry, str]] = []
    kept = []
    for entry in listed:
        if entry.manifest is None and age(entry) > UNFINISHED_AFTER:
            doomed.append((entry, "an upload that never finished"))
        elif args.max_age is not None and entry.manifest and age(entry) > args.max_age:
            doomed.append((entry, f"published {age(entry) / 86400:.1f} days ago"))
        else:
            kept.append(entry)
    total = sum(e.size for e in kept)
    for entry in kept:  # oldest first, until the rest fits
        if args.max_size is None or total <= args.max_size or entry.manifest is None:
            continue
        doomed.append((entry, "the remote cache is over --max-size"))
        total -= entry.size
    verb = "would remove" if args.dry_run else "removed"
    for entry, reason in doomed:
        if not args.dry_run:
            remove(remote, entry)
        log.phase("gc", f"{verb} {entry.key} ({entry.size / 2**20:.1f} MiB) from "
                  f"{remote.backend.description}: {reason}")
    log.phase("gc", f"{verb} {len(doomed)} published environments, "
              f"{sum(e.size for e, _ in doomed) / 2**20:.1f} MiB")
    return 0
