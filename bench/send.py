"""End-to-end sending benchmark against Postfix's smtp-sink, beside smtp-source's limit.

Needs Postfix's ``smtp-sink`` and ``smtp-source`` (Debian: apt-get install postfix), a
PostgreSQL and a Redis (defaults: the local ones; NEWSLETTER_BENCH_DATABASE_URL and
NEWSLETTER_BENCH_REDIS_URL override). The database named there is emptied.

1. ``smtp-source`` pushes --subscribers messages of the digest's size over --connections
   sessions into a fresh ``smtp-sink``: the limit of this machine's loopback SMTP.
2. The real pipeline sends one edition to --subscribers readers into another fresh sink:
   delivery rows created in the database, batch tasks through Redis, Celery workers
   (prefork, --connections processes: one SMTP connection each), the SMTP transport.

With --rounds N both run N times, alternately, and the figures are the medians (the ratio:
the median of each round's ratio); duplicates and missing add up over the rounds.

Prints JSON lines: smtp_source_msgs_per_s, enqueue_s, throughput_msgs_per_s,
ratio_vs_smtp_source, worker_peak_rss_mb, duplicates, missing (and roundN_ratio_vs_smtp_source).

Usage: python bench/send.py --subscribers 100000 [--rounds 3] [--connections 4]
       [--batch-size 500] [--flush-size N] [--receipts marks|each|group]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _seed import bench_environment, emit, seed  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sink:
    """``smtp-sink`` on a free loopback port, counting the messages it accepts."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / f"sink-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sink:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["smtp-sink", "-c", "-u", "root", f"127.0.0.1:{self.port}", "1024"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        time.sleep(0.3)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)

    def received(self) -> int:
        counts = re.findall(rb"mesg=(\d+)", self.log.read_bytes()[-200:])
        return int(counts[-1]) if counts else 0


def measure_smtp_source(workdir: Path, size: int, count: int, connections: int) -> float:
    with Sink(workdir) as sink:
        started = time.perf_counter()
        subprocess.run(
            ["smtp-source", "-l", str(size), "-m", str(count), "-s", str(connections),
             "-f", "digest@example.com", "-t", "reader@example.com", f"127.0.0.1:{sink.port}"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return count / (time.perf_counter() - started)


def rss_mb(pids: list[int]) -> float:
    peak = 0.0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            peak = max(peak, int(match.group(1)) / 1024)
    return peak


def process_tree(root: int) -> list[int]:
    found = [root]
    for pid in found:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            found.extend(int(c) for c in children.read_text().split())
    return found


def send_once(
    args: argparse.Namespace, workdir: Path, queue: str, database_url: str, edition_id: int
) -> dict[str, float]:
    """One send of the edition through real workers into a fresh sink."""
    from newsletter.db import session_scope
    from newsletter.delivery.fanout import pending_batches
    from newsletter.delivery.progress import progress
    from newsletter.editions.lifecycle import start_sending

    with Sink(workdir) as sink:
        env_worker = {**os.environ, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{sink.port}"}
        with (workdir / "worker.log").open("ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel=WARNING",
                 f"--concurrency={args.connections}", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", f"--queues={queue}"],
                cwd=ROOT, env=env_worker, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        time.sleep(4)  # let the pool start before the clock does
        from workers.tasks import deliver

        started = time.perf_counter()
        with session_scope(database_url) as session:
            start_sending(session, edition_id, now=datetime.now(UTC))
        with session_scope(database_url) as session:
            batches = pending_batches(session, edition_id, args.batch_size)
        for batch in batches:
            deliver.delay(batch.edition_id, batch.first_id, batch.last_id)
        enqueued = time.perf_counter()

        peak = 0.0
        deadline = time.monotonic() + max(600, args.subscribers / 50)
        while True:
            peak = max(peak, rss_mb(process_tree(worker.pid)))
            with session_scope(database_url) as session:
                state = progress(session, edition_id, now=datetime.now(UTC))
            if state.remaining == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        time.sleep(1)
        received = sink.received()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    return {
        "enqueue_s": enqueued - started,
        "throughput": state.sent / elapsed,
        "peak_rss_mb": peak,
        "duplicates": max(received - state.sent, 0),
        "missing": args.subscribers - state.sent,
    }


def reset(database_url: str, edition_id: int) -> None:
    """The edition back to scheduled, with no deliveries: ready to be sent again."""
    from sqlalchemy import delete, update

    from newsletter.db import get_engine, session_scope
    from newsletter.models import Delivery, Edition, EditionStatus

    with session_scope(database_url) as session:
        session.execute(delete(Delivery).where(Delivery.edition_id == edition_id))
        session.execute(
            update(Edition)
            .where(Edition.id == edition_id)
            .values(status=EditionStatus.SCHEDULED, send_started_at=None, sent_at=None)
        )
    # As fresh as the first round's table: no dead rows left for the next send to wade through.
    with get_engine(database_url).connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE deliveries"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--flush-size", type=int, default=None, help="delivery_flush_size (default: the config's)"
    )
    parser.add_argument(
        "--receipts", choices=["marks", "each", "group"], default="marks",
        help="delivery_receipts: a progress mark in Redis per message and a write per group "
        "(the default), an outcome write per message, or one write per group",
    )  # fmt: skip
    parser.add_argument(
        "--bounce-address", default="bounces@mail.example.com",
        help="NEWSLETTER_BOUNCE_ADDRESS: each message's envelope sender is its own signed "
        "VERP address under it, as in production ('' for the list's From address)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="alternate smtp-source and the pipeline this many times; the figures are medians",
    )  # fmt: skip
    args = parser.parse_args()
    for tool in ("smtp-sink", "smtp-source"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install postfix", file=sys.stderr)
            raise SystemExit(2)

    workdir = Path(tempfile.mkdtemp(prefix="bench-send-"))
    queue = f"bench-send-{os.getpid()}"
    flush = (
        {} if args.flush_size is None else {"NEWSLETTER_DELIVERY_FLUSH_SIZE": str(args.flush_size)}
    )
    bench_environment(
        NEWSLETTER_CELERY_QUEUE=queue,
        NEWSLETTER_BATCH_SIZE=str(args.batch_size),
        NEWSLETTER_DELIVERY_RECEIPTS=args.receipts,
        NEWSLETTER_BOUNCE_ADDRESS=args.bounce_address,
        **flush,
    )

    seeded = seed(args.subscribers)
    database_url, edition_id, size = seeded.database_url, seeded.edition_id, seeded.message_bytes
    emit("message_bytes", size, "bytes")

    # Round by round, the baseline and the pipeline push the same number of messages, one
    # right after the other, so both see the same machine (loopback SMTP on a shared host
    # varies by a quarter from one minute to the next).
    limits, runs = [], []
    for round_ in range(args.rounds):
        if round_:
            reset(database_url, edition_id)
        limits.append(measure_smtp_source(workdir, size, args.subscribers, args.connections))
        runs.append(send_once(args, workdir, queue, database_url, edition_id))
        if args.rounds > 1:
            emit(f"round{round_ + 1}_ratio_vs_smtp_source",
                 runs[-1]["throughput"] / limits[-1], "x")  # fmt: skip

    def median(values: list[float]) -> float:
        return statistics.median(values)

    emit("smtp_source_msgs_per_s", median(limits), "msgs/s")
    emit("enqueue_s", median([run["enqueue_s"] for run in runs]), "s")
    emit("throughput_msgs_per_s", median([run["throughput"] for run in runs]), "msgs/s")
    emit("ratio_vs_smtp_source",
         median([run["throughput"] / limit for run, limit in zip(runs, limits, strict=True)]),
         "x")  # fmt: skip
    emit("worker_peak_rss_mb", max(run["peak_rss_mb"] for run in runs), "MB")
    emit("duplicates", sum(run["duplicates"] for run in runs), "messages")
    emit("missing", sum(run["missing"] for run in runs), "messages")


if __name__ == "__main__":
    main()
