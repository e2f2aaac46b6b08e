"""`extensibility gc`: remove leftovers, then old, then least-recently-used environments."""

from __future__ import annotations

import argparse

from extensibility.cleanup import collect
from extensibility.commands import Context
from extensibility.settings import parse_duration, parse_size
from extensibility.store import Store


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


UNFINISHED_AFTER = 3600.0  # an archive without its manifest this old is an upload that died


def _remote(args: argparse.Namespace, context: Context) -> int:
    from extensibility.commands.remote_access import require_remote
    from extensibility.remote.inventory import entries, remove, select

    remote, log = require_remote(context), context.log
    removals = select(entries(remote), max_age=args.max_age, max_size=args.max_size,
                      unfinished_after=UNFINISHED_AFTER)
    verb = "would remove" if args.dry_run else "removed"
    for removal in removals:
        if not args.dry_run:
            remove(remote, removal)
        log.phase("gc", f"{verb} {removal.key} ({removal.size / 2**20:.1f} MiB, "
                  f"{len(removal.blobs)} blobs) from {remote.backend.description}: "
                  f"{removal.reason}")
    log.phase("gc", f"{verb} {len(removals)} published environments or leftovers, "
              f"{sum(r.size for r in removals) / 2**20:.1f} MiB")
    return 0
