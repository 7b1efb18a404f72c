"""Web benchmark: the reader endpoints under load from ``wrk`` on loopback.

Starts ``newsletter serve --workers 2`` (uvicorn) in a subprocess on a
free port, against a fresh SQLite database in a temp dir (or NEWSLETTER_DATABASE_URL if set),
with one list and one confirmed reader, then measures with ``wrk`` and bench/web.lua:

  healthz_*      GET /healthz (a baseline: routing, middleware and one SELECT 1)
  subscribe_*    POST /subscribe, the form, a distinct address per request (a real signup:
                 subscriber, subscription and consent rows, then the confirmation notice)
  one_click_*    POST /unsubscribe/<token> with List-Unsubscribe=One-Click (RFC 8058); the
                 first request unsubscribes, the rest take the idempotent path

Prints JSON lines {"metric", "value", "unit"}: <name>_rps, <name>_latency_p50 and _p99 (ms),
<name>_non_2xx (responses that were not 2xx; all must be 0) and <name>_socket_errors; then
subscribe_rows_added (subscribers stored during the subscribe run) and either
confirmation_emails_written / _drain (no Redis: Maildir outbox, and how long the background
threads took to finish after the run) or confirmation_notices_queued / _misrouted (Redis:
tasks on the bench's queue, and tasks that went to Celery's fallback "celery" queue instead).
Exits 1 if any request was not answered 2xx, failed, or lost its confirmation email;
2 if wrk is missing.

Rate limits are raised out of the way. Without NEWSLETTER_REDIS_URL the limits live in each
worker's memory and confirmation emails are rendered in a background thread of the web worker
and written to a Maildir outbox in the temp dir; with it, limits live in Redis and notices are
queued (on a queue of their own, deleted afterwards) for Celery. No email ever leaves the
machine: SMTP is never configured here.

Usage: python bench/web.py [--duration 10s] [--connections 16] [--threads 2] [--workers 2]
Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "web.lua"
LIST_SLUG = "bench"
HIGH_LIMIT = "1000000/minute"
WARM_UP_SIGNUPS = 8
# Celery's fallback app (used by a thread with no current app) sends to this queue.
FALLBACK_QUEUE = "celery"


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit}), flush=True)


def server_environment(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "NEWSLETTER_ENVIRONMENT": "production",
            "NEWSLETTER_SECRET_KEY": secrets.token_urlsafe(32),
            "NEWSLETTER_DATABASE_URL": os.environ.get("NEWSLETTER_DATABASE_URL")
            or f"sqlite:///{tmp / 'bench.db'}",
            "NEWSLETTER_REDIS_URL": os.environ.get("NEWSLETTER_REDIS_URL", ""),
            "NEWSLETTER_CELERY_QUEUE": f"newsletter-bench-{secrets.token_hex(4)}",
            # Never send: notices go to a Maildir in the temp dir (or to a Celery queue).
            "NEWSLETTER_SMTP_URL": "",
            "NEWSLETTER_OUTBOX_DIR": str(tmp / "outbox"),
            "NEWSLETTER_ENV_FILE": str(tmp / "no-such.env"),
            "NEWSLETTER_BASE_URL": "https://news.example.com",  # production wants https
            "NEWSLETTER_SIGNUP_RATE_LIMIT_PER_IP": HIGH_LIMIT,
            "NEWSLETTER_SIGNUP_RATE_LIMIT_PER_ADDRESS": HIGH_LIMIT,
        }
    )
    if env["NEWSLETTER_REDIS_URL"]:
        # Celery's fallback app would publish to amqp://localhost: keep its messages in the
        # bench's Redis, where they are counted as misrouted and deleted afterwards.
        env["CELERY_BROKER_URL"] = env["NEWSLETTER_REDIS_URL"]
        env["BENCH_FALLBACK_BEFORE"] = str(int(redis_client(env).llen(FALLBACK_QUEUE)))
    return env


def prepare_database(env: dict[str, str]) -> str:
    """Migrate, then add the list and one confirmed reader; returns the one-click path."""
    os.environ.update(env)  # the settings read the same values as the server
    from newsletter import migrate
    from newsletter.config import get_settings
    from newsletter.db import session_scope
    from newsletter.lists.service import ListSpec, create_list, find_list
    from newsletter.subscriptions.service import Signup, subscribe
    from newsletter.subscriptions.tokens import UNSUBSCRIBE, make_token

    get_settings.cache_clear()
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    with session_scope(settings.database_url) as session:
        nl = find_list(session, LIST_SLUG) or create_list(
            session,
            ListSpec(slug=LIST_SLUG, name="Bench Daily", from_address="bench@example.com"),
        )
        subscription, _ = subscribe(
            session, nl, Signup(f"reader-{secrets.token_hex(4)}@example.com"),
            now=datetime.now(UTC), confirmed=True, source="bench",
        )  # fmt: skip
        reader = (subscription.subscriber_id, nl.id, subscription.subscriber.token_key)
        token = make_token(settings.secret_key, UNSUBSCRIBE, *reader)
    return f"/unsubscribe/{token}"


def free_port() -> int:
    from newsletter.runtime import free_port as pick

    return pick()


@contextmanager
def served(env: dict[str, str], workers: int, log: Path) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable, "-m", "newsletter", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--no-access-log",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        try:
            wait_until_up(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"uvicorn exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"uvicorn did not answer /healthz within 30s:\n{log.read_text()[-3000:]}")


def warm_up(url: str, one_click: str) -> None:
    """A few requests of each kind, so every worker has its imports and connections ready."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(WARM_UP_SIGNUPS):
            client.get("/healthz").raise_for_status()
            client.get("/subscribe").raise_for_status()
            client.post(
                "/subscribe",
                data={"email": f"warmup-{i}@example.com", "lists": LIST_SLUG},
            ).raise_for_status()
            answer = client.post(
                one_click,
                content=b"List-Unsubscribe=One-Click",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            answer.raise_for_status()


def wrk(url: str, script: Path, script_args: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """One wrk run of ``script`` against ``url``: the JSON its ``BENCH`` line reports."""
    command = [
        "wrk", "--latency", "-t", str(args.threads), "-c", str(args.connections),
        "-d", args.duration, "--timeout", "10s", "-s", str(script), url, "--", *script_args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if args.verbose:
        print(result.stdout, file=sys.stderr)
    if result.returncode != 0:
        raise SystemExit(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    for line in result.stdout.splitlines():
        if line.startswith("BENCH "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
            return parsed
    raise SystemExit(f"wrk printed no BENCH line:\n{result.stdout}\n{result.stderr}")


def run_wrk(url: str, mode: str, path: str, args: argparse.Namespace, nonce: str) -> dict[str, Any]:
    return wrk(url + path, LUA, [mode, path, nonce, LIST_SLUG], args)


def report(name: str, stats: dict[str, Any]) -> bool:
    seconds = stats["duration_us"] / 1e6
    emit(f"{name}_rps", stats["requests"] / seconds if seconds else 0.0, "req/s")
    emit(f"{name}_latency_p50", stats["p50_us"] / 1000, "ms")
    emit(f"{name}_latency_p99", stats["p99_us"] / 1000, "ms")
    emit(f"{name}_non_2xx", stats["non_2xx"], "responses")
    socket_errors = sum(
        stats[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    emit(f"{name}_socket_errors", socket_errors, "errors")
    return stats["non_2xx"] == 0 and socket_errors == 0 and stats["requests"] > 0


def stored_subscribers(database_url: str) -> int:
    from sqlalchemy import func, select

    from newsletter.db import session_scope
    from newsletter.models import Subscriber

    with session_scope(database_url) as session:
        return int(session.scalar(select(func.count()).select_from(Subscriber)) or 0)


def written_notices(outbox: Path) -> int:
    new = outbox / "new"
    return sum(1 for _ in new.iterdir()) if new.is_dir() else 0


def wait_for_notices(env: dict[str, str], expected: int, timeout: float = 180) -> bool:
    """Let the background threads write the signups' confirmation emails before the next
    measurement (they would compete for the CPU), and report how many were written or, with
    Redis, queued for Celery (nothing consumes the bench's queue). False if some are missing."""
    if env["NEWSLETTER_REDIS_URL"]:
        client = redis_client(env)
        queued = int(client.llen(env["NEWSLETTER_CELERY_QUEUE"]))
        misrouted = int(client.llen(FALLBACK_QUEUE)) - int(env["BENCH_FALLBACK_BEFORE"])
        emit("confirmation_notices_queued", queued, "tasks")
        emit("confirmation_notices_misrouted", misrouted, "tasks")
        return misrouted == 0 and queued >= expected
    outbox = Path(env["NEWSLETTER_OUTBOX_DIR"])
    started = time.monotonic()
    last, last_change = -1, started
    while True:
        count = written_notices(outbox)
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
        if count >= expected or now - last_change > 15 or now - started > timeout:
            break
        time.sleep(0.25)
    emit("confirmation_emails_written", count, "emails")
    emit("confirmation_emails_drain", time.monotonic() - started, "s")
    return count >= expected


def redis_client(env: dict[str, str]) -> Any:
    import redis

    return redis.Redis.from_url(env["NEWSLETTER_REDIS_URL"])


def drop_queue(env: dict[str, str]) -> None:
    """Delete the bench's queue, and the notices misrouted to Celery's fallback queue."""
    if not env["NEWSLETTER_REDIS_URL"]:
        return
    client = redis_client(env)
    queue = env["NEWSLETTER_CELERY_QUEUE"]
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    misrouted = int(client.llen(FALLBACK_QUEUE)) - int(env["BENCH_FALLBACK_BEFORE"])
    if misrouted > 0:
        client.lpop(FALLBACK_QUEUE, misrouted)  # kombu pushes on the left
    if env["BENCH_FALLBACK_BEFORE"] == "0" and not client.exists(FALLBACK_QUEUE):
        client.delete(
            f"_kombu.binding.{FALLBACK_QUEUE}", f"_kombu.binding_permanent.{FALLBACK_QUEUE}"
        )
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="10s", help="per endpoint, as wrk takes it")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--verbose", action="store_true", help="show wrk's own output")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print(
            "bench/web.py needs wrk, which is not installed. Install it with: apt-get install wrk",
            file=sys.stderr,
        )
        return 2

    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as folder:
        tmp = Path(folder)
        env = server_environment(tmp)
        one_click = prepare_database(env)
        nonce = secrets.token_hex(3)
        ok = True
        try:
            with served(env, args.workers, tmp / "uvicorn.log") as url:
                warm_up(url, one_click)
                before = stored_subscribers(env["NEWSLETTER_DATABASE_URL"])
                ok &= report("healthz", run_wrk(url, "get", "/healthz", args, nonce))
                subscribe = run_wrk(url, "subscribe", "/subscribe", args, nonce)
                ok &= report("subscribe", subscribe)
                added = stored_subscribers(env["NEWSLETTER_DATABASE_URL"]) - before
                emit("subscribe_rows_added", added, "subscribers")
                ok &= added >= subscribe["requests"] - subscribe["non_2xx"]
                ok &= wait_for_notices(env, expected=added + WARM_UP_SIGNUPS)
                ok &= report("one_click", run_wrk(url, "one-click", one_click, args, nonce))
        finally:
            drop_queue(env)
        if not ok:
            print(
                "some requests were not answered 2xx, failed, or lost their confirmation "
                "email: see above",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
