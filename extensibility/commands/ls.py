"""`extensibility ls [--json]`: the cached environments, their size, last use and status."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from extensibility.cleanup import status
from extensibility.commands import Context
from extensibility.log import escaped
from extensibility.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--remote", action="store_true",
                        help="list the environments published to EXTENSIBILITY_REMOTE_CACHE")


def main(args: argparse.Namespace, context: Context) -> int:
    if args.remote:
        return _remote(args, context)
    store = Store(context.settings.cache_dir)
    rows: list[dict[str, Any]] = [
        {"key": e.key, "size": e.size(), "last_use": e.last_access, "status": status(store, e),
         "origin": (e.origin or {}).get("request_file"),
         "installer": (e.origin or {}).get("installer"), "path": str(e.path)}
        for e in store.entries()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'KEY':16}  {'SIZE':>9}  {'LAST USE':19}  {'STATUS':10}  ORIGIN")
    for row in rows:
        used = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["last_use"]))
                if row["last_use"] else "-")
        print(f"{row['key']:16}  {row['size'] / 2**20:7.1f}Mi  {used:19}  {row['status']:10}  "
              f"{row['origin'] or '-'}")
    return 0


def _remote(args: argparse.Namespace, context: Context) -> int:
    from extensibility.commands.remote_access import require_remote
    from extensibility.remote.inventory import entries

    remote = require_remote(context)
    rows = [entry.row() for entry in entries(remote)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{remote.backend.description}")
    print(f"{'KEY':16}  {'SIZE':>9}  {'PUBLISHED':19}  {'STATUS':10}  BUILDER")
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["published"]))
        # key and builder are read from the store: escaped on a text line
        print(f"{escaped(row['key']):16}  {row['size'] / 2**20:7.1f}Mi  {when:19}  "
              f"{row['status']:10}  {escaped(str(row['builder'] or '-'))}")
    return 0
