"""Click benchmark: the tracked-link redirect under load from ``wrk``, against /healthz.

Serves the app as bench/web.py does (``newsletter serve --workers 2``, uvicorn, in a
subprocess on a free port) on a migrated SQLite database in a temp dir (or --database-url),
with Redis: an embedded one in the temp dir (as the quick start starts it) unless
--redis-url names one. Seeds one list (click tracking: anonymous, the default), the sample
feed's posts, readers and an edition built and sent through the domain, takes a tracked link
from the edition's stored HTML and gives it --readers distinct reader parts, as that many
messages would carry (ReaderParts, signed for the edition, sent an hour ago).

Then, --rounds times, alternately (one order, then the other), for --duration each:
  clicks     GET /r/<link>/<reader>: 302 to the story after one RPUSH of the click to Redis
  healthz    GET /healthz: routing, middleware and one SELECT 1 (the baseline)
with ``wrk -t THREADS -c CONNECTIONS --latency`` and bench/clicks.lua (wrk never follows a
redirect). Afterwards ``handoff.flush_clicks`` runs once with a clock a day ahead, so that
every click has settled, and writes them all to the database.

Prints JSON lines {"metric", "value", "unit"}; for each round (roundN_...) and then the median
over the rounds, with the best round as <metric>_best:
  clicks_rps, healthz_rps, clicks_vs_healthz (each round's ratio), clicks_p99_ms,
  healthz_p99_ms (and _p50_ms)
and once: clicks_unexpected / healthz_unexpected (responses not 302 / 200) and
_socket_errors (all must be 0), clicks_buffered (LLEN of newsletter:clicks after the runs:
every redirect answered left its click there), clicks_flushed (clicks the flush wrote),
clicks_flush_s and clicks_flushed_per_s. Exits 1 if a request failed or was answered
otherwise, or a click was not buffered or not written; 2 if wrk is missing.

The issue's target, on 2 cores: clicks >= 0.5 x healthz's requests per second, p99 < 50 ms.

Usage: taskset -c 0,1 python bench/clicks.py [--rounds 3] [--duration 10s] [--connections 32]
       [--readers 1000] [--redis-url redis://127.0.0.1:6379/11] [--database-url URL]
Needs wrk (Debian: apt-get install wrk) and redis-server for the embedded Redis.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from web import (  # bench/ on sys.path
    drop_queue,
    emit,
    redis_client,
    served,
    server_environment,
    wrk,
)

LUA = Path(__file__).resolve().parent / "clicks.lua"
# The edition is built as of the sample feed's day (as bench/_seed.py does) and sent an hour
# before the run, so that no click is "too soon" after delivery.
BUILT_AT = datetime(2025, 5, 16, 7, 30, tzinfo=UTC)
READERS = 20
TRACKED = re.compile(r'/r/([^/"]+)/__NL_READER_[0-9a-f]+__')
CLICKS_KEY = "newsletter:clicks"
WARM_UP = 40


@dataclass(frozen=True)
class Seeded:
    edition_id: int
    link: str  # /r/<token>
    readers: list[str]  # reader parts, one per message
    sent_at: datetime


def seed(env: dict[str, str], readers: int) -> Seeded:
    """Migrate; add one list, the sample posts, readers and a sent edition (the domain's way)."""
    os.environ.update(env)  # the settings read the same values as the server
    from sqlalchemy import update

    from newsletter import migrate
    from newsletter.analytics.readers import ReaderParts
    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.editions import lifecycle
    from newsletter.editions.build import build_edition
    from newsletter.lists.service import ListSpec, create_list
    from newsletter.models import ClickTracking, Delivery, DeliveryStatus
    from newsletter.posts.ingest import upsert_posts
    from newsletter.posts.sources import parse_feed
    from newsletter.resources import data_path
    from newsletter.subscriptions.service import Signup, import_subscribers

    get_settings.cache_clear()
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    sent_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    slug = f"clicks-{secrets.token_hex(3)}"  # a list of its own in a shared database
    with session_scope(settings.database_url) as session:
        nl = create_list(
            session, ListSpec(slug=slug, name="Bench Clicks", from_address="bench@example.com")
        )
        assert nl.click_tracking == ClickTracking.ANONYMOUS
        feed = data_path("sample_feed.xml").read_bytes()
        upsert_posts(session, parse_feed(feed, now=BUILT_AT).posts)
        import_subscribers(
            session, nl, [Signup(f"{slug}-{i}@example.com") for i in range(READERS)],
            now=BUILT_AT, source="bench",
        )  # fmt: skip
        edition = build_edition(session, nl, BUILT_AT.date(), now=BUILT_AT, settings=settings)
        edition_id = edition.edition.id
        session.commit()
        lifecycle.start_sending(session, edition_id, now=sent_at)
        # As the workers would have: every message went out.
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id)
            .values(status=DeliveryStatus.SENT, sent_at=sent_at, updated_at=sent_at)
        )
        lifecycle.finish_if_complete(session, edition_id, now=sent_at)
        found = TRACKED.search(edition.edition.html)
        if found is None:
            raise SystemExit("the edition's HTML has no tracked link: is click tracking off?")
    parts = ReaderParts(settings.secret_key, edition_id, ClickTracking.ANONYMOUS, sent_at)
    return Seeded(
        edition_id, f"/r/{found.group(1)}", [parts.part(i + 1) for i in range(readers)], sent_at
    )


@contextmanager
def redis_url(given: str, tmp: Path) -> Iterator[str]:
    if given:
        yield given
        return
    from newsletter.runtime import embedded_redis

    with embedded_redis(tmp / "redis") as url:
        yield url


def warm_up(url: str, paths: list[str]) -> None:
    """A new connection per request, so that both workers load the link and connect."""
    for i in range(WARM_UP):
        httpx.get(f"{url}/healthz", timeout=10).raise_for_status()
        answer = httpx.get(url + paths[i % len(paths)], timeout=10, follow_redirects=False)
        if answer.status_code != 302:
            raise SystemExit(f"the tracked link answered {answer.status_code}, not 302")


def run_wrk(url: str, expect: int, target: str, args: argparse.Namespace) -> dict[str, Any]:
    return wrk(url, LUA, [str(expect), target], args)


def figures(stats: dict[str, Any]) -> dict[str, float]:
    seconds = stats["duration_us"] / 1e6
    return {
        "rps": stats["requests"] / seconds if seconds else 0.0,
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "requests": stats["requests"],
        "unexpected": stats["unexpected"],
        "socket_errors": sum(
            stats[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
    }


UNITS = {"rps": "req/s", "p50_ms": "ms", "p99_ms": "ms"}


def report(rounds: list[dict[str, dict[str, float]]]) -> bool:
    """Per round, then medians and the best round; True if every request went as expected."""
    ratios = [r["clicks"]["rps"] / r["healthz"]["rps"] for r in rounds]
    for number, (run, ratio) in enumerate(zip(rounds, ratios, strict=True), start=1):
        for name in ("clicks", "healthz"):
            for key, unit in UNITS.items():
                emit(f"round{number}_{name}_{key}", run[name][key], unit)
        emit(f"round{number}_clicks_vs_healthz", ratio, "x")
    for name in ("clicks", "healthz"):
        for key, unit in UNITS.items():
            values = [run[name][key] for run in rounds]
            emit(f"{name}_{key}", statistics.median(values), unit)
            emit(f"{name}_{key}_best", max(values) if key == "rps" else min(values), unit)
    emit("clicks_vs_healthz", statistics.median(ratios), "x")
    emit("clicks_vs_healthz_best", max(ratios), "x")
    ok = True
    for name in ("clicks", "healthz"):
        unexpected = sum(run[name]["unexpected"] for run in rounds)
        errors = sum(run[name]["socket_errors"] for run in rounds)
        emit(f"{name}_unexpected", unexpected, "responses")
        emit(f"{name}_socket_errors", errors, "errors")
        ok &= unexpected == 0 and errors == 0
    return ok


def flush(edition_id: int, expected: int) -> bool:
    """Write every buffered click (a clock a day ahead: all have settled); True if all were."""
    from sqlalchemy import func, select

    from newsletter import handoff
    from newsletter.clock import FrozenClock
    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.models import TrackedLink

    settings = get_settings()
    clock = FrozenClock(datetime.now(UTC) + timedelta(days=1))
    started = time.perf_counter()
    result = handoff.flush_clicks(settings, clock)
    elapsed = time.perf_counter() - started
    emit("clicks_flushed", result.clicks, "clicks")
    emit("clicks_flush_s", elapsed, "s")
    emit("clicks_flushed_per_s", result.clicks / elapsed if elapsed else 0.0, "clicks/s")
    with session_scope(settings.database_url) as session:
        counted = session.scalar(
            select(func.sum(TrackedLink.human_clicks + TrackedLink.machine_clicks)).where(
                TrackedLink.edition_id == edition_id
            )
        )
    emit("clicks_counted", int(counted or 0), "clicks")
    return result.clicks >= expected and int(counted or 0) >= expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", default="10s", help="per endpoint and round, as wrk takes it")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--readers", type=int, default=1000,
        help="distinct reader parts the clicks carry, in turn (messages clicked)",
    )  # fmt: skip
    parser.add_argument("--redis-url", default="", help="default: an embedded Redis")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument("--verbose", action="store_true", help="show wrk's own output")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print(
            "bench/clicks.py needs wrk, which is not installed. Install it with: "
            "apt-get install wrk",
            file=sys.stderr,
        )
        return 2

    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as folder:
        tmp = Path(folder)
        with redis_url(args.redis_url, tmp) as redis:
            os.environ["NEWSLETTER_REDIS_URL"] = redis
            if args.database_url:
                os.environ["NEWSLETTER_DATABASE_URL"] = args.database_url
            env = server_environment(tmp)
            # Production refuses an http base URL; only the links in emails start with it.
            env["NEWSLETTER_BASE_URL"] = "https://news.example.com"
            seeded = seed(env, args.readers)
            paths = [f"{seeded.link}/{reader}" for reader in seeded.readers]
            paths_file = tmp / "paths.txt"
            paths_file.write_text("\n".join(paths) + "\n")
            client = redis_client(env)
            before = int(client.llen(CLICKS_KEY))
            rounds: list[dict[str, dict[str, float]]] = []
            try:
                with served(env, args.workers, tmp / "uvicorn.log") as url:
                    warm_up(url, paths)
                    for number in range(args.rounds):
                        order = [("clicks", 302, f"@{paths_file}"), ("healthz", 200, "/healthz")]
                        run = {
                            name: figures(run_wrk(url, expect, target, args))
                            for name, expect, target in (order[::-1] if number % 2 else order)
                        }
                        rounds.append(run)
                    buffered = int(client.llen(CLICKS_KEY)) - before
            finally:
                drop_queue(env)
            ok = report(rounds)
            answered = sum(run["clicks"]["requests"] for run in rounds) + WARM_UP
            emit("clicks_buffered", buffered, "clicks")
            ok &= buffered >= answered
            ok &= flush(seeded.edition_id, buffered)
            client.close()
        if not ok:
            print(
                "some requests failed or were answered otherwise, or clicks were not buffered "
                "or not written: see above",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
