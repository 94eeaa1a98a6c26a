"""``python -m benchmarks queue [--db PATH] [--requests N] [--rebuild]``
``python -m benchmarks verify [--max-records N]``.
``python -m benchmarks iso18626 [--messages N] [--connections C]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="name", required=True)
    queue = sub.add_parser("queue", help="queues over 1,000,000 requests in the real app")
    queue.add_argument("--db", type=Path, default=None, help="SQLite file (built if needed)")
    queue.add_argument("--requests", type=int, default=1_000_000)
    queue.add_argument("--rebuild", action="store_true", help="build the database afresh")
    verify_cmd = sub.add_parser(
        "verify", help="1,000 damaged citations verified against a real Zebra"
    )
    verify_cmd.add_argument(
        "--max-records", type=int, default=None, help="records per search (default: the app's)"
    )
    iso = sub.add_parser(
        "iso18626", help="ISO 18626 messages/s into a real ill-tui serve, and in process"
    )
    iso.add_argument("--messages", type=int, default=2000, help="requests to post")
    iso.add_argument("--connections", type=int, default=8, help="concurrent connections")
    args = parser.parse_args(argv)
    if args.name == "iso18626":
        from benchmarks import iso18626

        return iso18626.run(args.messages, args.connections)
    if args.name == "verify":
        from benchmarks import verify

        return verify.run(args.max_records or verify.MAX_RECORDS)
    if args.name == "queue":
        from benchmarks import queue as bench

        db = args.db or bench.DEFAULT_DB
        return bench.run(db, args.requests, args.rebuild)
    return 2


if __name__ == "__main__":
    sys.exit(main())
