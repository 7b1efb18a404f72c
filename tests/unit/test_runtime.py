"""How many processes a worker runs unless told (`newsletter worker` and the Celery app)."""

from __future__ import annotations

import os

from newsletter.runtime import worker_concurrency


def test_a_worker_on_sqlite_runs_two_processes() -> None:
    assert worker_concurrency("sqlite:///var/newsletter.db") == 2


def test_a_worker_on_postgresql_runs_two_processes_per_cpu() -> None:
    cpus = len(os.sched_getaffinity(0))

    assert worker_concurrency("postgresql+psycopg://news@db/newsletter") == 2 * cpus
