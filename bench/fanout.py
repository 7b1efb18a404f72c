"""Fan-out benchmark: creating an edition's delivery rows and its batch ranges.

Seeds N confirmed readers into the benchmark database (emptied first; default the local
PostgreSQL's ``bench`` database, NEWSLETTER_BENCH_DATABASE_URL overrides), then times
``start_sending`` (chunked INSERT ... SELECT) and ``pending_batches`` (keyset ranges).

Prints JSON lines: fanout_rows, fanout_s, fanout_rows_per_s, batches, batch_ranges_s.

Usage: python bench/fanout.py --subscribers 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _seed import bench_environment, emit, seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    bench_environment()

    from newsletter.db import session_scope
    from newsletter.delivery.fanout import pending_batches
    from newsletter.editions.lifecycle import start_sending

    seeded = seed(args.subscribers)
    started = time.perf_counter()
    with session_scope(seeded.database_url) as session:
        created = start_sending(session, seeded.edition_id, now=datetime.now(UTC))
    fanned_out = time.perf_counter()
    with session_scope(seeded.database_url) as session:
        batches = pending_batches(session, seeded.edition_id, args.batch_size)
    ranged = time.perf_counter()
    emit("fanout_rows", created, "rows")
    emit("fanout_s", fanned_out - started, "s")
    emit("fanout_rows_per_s", created / (fanned_out - started), "rows/s")
    emit("batches", len(batches), "batches")
    emit("batch_ranges_s", ranged - fanned_out, "s")


if __name__ == "__main__":
    main()
