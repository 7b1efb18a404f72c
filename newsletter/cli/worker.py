"""``newsletter worker`` and ``newsletter beat``: this project's Celery worker and scheduler,
on its app, queue and settings. ``celery -A workers worker`` and ``celery -A workers beat``
run the same app, with the same defaults."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from newsletter.cli.common import CommandError, console, settings
from newsletter.config import Settings
from newsletter.runtime import BEAT_SCHEDULE_FILE, celery_command, worker_concurrency
from newsletter.text import without_password

# Both commands hand whatever they do not know, and everything after `--`, to Celery.
PASS_THROUGH: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True}

LOGLEVEL = Annotated[str, typer.Option("--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR.")]


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", min=1,
            help="Processes sending at once (default: two per CPU, as sending mostly waits on "
            "the mail server; two on SQLite, which writes one at a time).",
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues", "-Q",
            help="Queues to consume, comma-separated (default: NEWSLETTER_CELERY_QUEUE).",
        ),
    ] = None,
    loglevel: LOGLEVEL = "INFO",
) -> None:  # fmt: skip
    """Send what `digest send`, `dispatch`, the admin and beat queue: a Celery worker.

    Run one on each machine that sends, as many as you like: they share nothing but
    NEWSLETTER_DATABASE_URL and NEWSLETTER_REDIS_URL, and may be added or stopped at any
    time. Ctrl-C (or SIGTERM) stops it once the batches in hand are done; a second
    one stops it at once, and `newsletter digest reconcile` (beat runs it) recovers what
    it held. Anything after `--` goes to `celery worker` as it is, e.g.
    `newsletter worker -- --hostname=mail1@%h`.
    """
    config = _with_broker("worker")
    processes = concurrency or worker_concurrency(config.database_url)
    consumed = queues or config.celery_queue
    console.print(
        f"Worker on queue {consumed}, {processes} process{'es' if processes > 1 else ''}: broker "
        f"{without_password(config.redis_url)}, database "
        f"{without_password(config.database_url)}.",
        highlight=False,
    )
    _become(
        celery_command(
            "worker", loglevel=loglevel, concurrency=processes, queues=consumed, extra=ctx.args
        )
    )


def beat(
    ctx: typer.Context,
    schedule: Annotated[
        str,
        typer.Option("--schedule", "-s", help="The file where beat keeps when each task last ran."),
    ] = BEAT_SCHEDULE_FILE,
    loglevel: LOGLEVEL = "INFO",
) -> None:
    """Queue the periodic work: due editions and feed polls every minute, recovery of
    stopped sends and returned mail every 5 minutes, nightly purges.

    Run one for the whole deployment, beside the workers that do the work; a second one
    (or a cron running `newsletter dispatch`) does no harm, only the same work twice. Anything
    after `--` goes to `celery beat` as it is.
    """
    config = _with_broker("beat")
    console.print(
        f"Beat: tasks to queue {config.celery_queue} on broker "
        f"{without_password(config.redis_url)}; schedule kept in {schedule}.",
        highlight=False,
    )
    _become(celery_command("beat", loglevel=loglevel, extra=[f"--schedule={schedule}", *ctx.args]))


def _with_broker(program: str) -> Settings:
    config = settings()
    if not config.redis_url:
        raise CommandError(
            f"NEWSLETTER_REDIS_URL is not set: a {program} needs the Redis that commands queue "
            "work in, e.g. NEWSLETTER_REDIS_URL=redis://127.0.0.1:6379/0. (Without it, "
            "`digest send` and `demo` run a Redis and a worker of their own.)"
        )
    return config


def _become(command: list[str]) -> None:
    """Replace this process with ``command``: signals from a terminal or a service manager
    then reach Celery itself, which shuts down the way it knows."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)  # noqa: S606  (our own argument list, no shell)
