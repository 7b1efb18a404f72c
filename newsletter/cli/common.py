"""What every command shares: settings, console output, errors, the queue and waiting."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from newsletter.clock import Clock, clock_for
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.delivery.progress import progress
from newsletter.handoff import CeleryHandoff, Handoff

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


class CommandError(Exception):
    """Ends a command with a message for the person at the terminal and exit status 1."""


def fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


_clock: Clock | None = None


def use_clock(clock: Clock | None) -> None:
    """Run every command on ``clock`` (tests); None returns to the settings' clock."""
    global _clock
    _clock = clock


def utcnow() -> datetime:
    """Now, from the command line's clock: the one the settings ask for, unless replaced."""
    return (_clock or clock_for(settings()))()


def settings() -> Settings:
    return get_settings()


def when(moment: datetime | None) -> str:
    """A time as the listings show it: to the minute, in UTC; "never" for none."""
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


def print_json(value: Any) -> None:
    # Plain print: rich would wrap long lines and break the JSON for other programs.
    print(json.dumps(value, indent=2, default=str))


@dataclass(frozen=True)
class Queue:
    """The workers, as a command sees them: where to hand work, and whether they are ours."""

    handoff: Handoff
    local_worker: bool  # started by this command, so it must wait for the work to finish


@contextmanager
def queue() -> Iterator[Queue]:
    """Make the broker reachable for this command; yields the hand-off to its workers.

    With NEWSLETTER_REDIS_URL set, tasks go to that Redis and the deployment's workers. Unset,
    an embedded Redis and a Celery worker run under var/ for as long as this command does.
    """
    current = settings()
    if current.redis_url:
        yield Queue(CeleryHandoff(current), local_worker=False)
        return
    from newsletter.runtime import celery_worker, embedded_redis

    var = Path("var")
    with embedded_redis(var / "redis") as url:
        os.environ["NEWSLETTER_REDIS_URL"] = url
        get_settings.cache_clear()
        try:
            env = {
                "NEWSLETTER_REDIS_URL": url,
                "NEWSLETTER_DATABASE_URL": current.database_url,
                "NEWSLETTER_OUTBOX_DIR": str(current.outbox_dir),
            }
            console.print("[dim]Started an embedded Redis and a Celery worker (var/worker.log).[/]")
            with celery_worker(env, var / "worker.log"):
                yield Queue(CeleryHandoff(settings()), local_worker=True)
        finally:
            os.environ.pop("NEWSLETTER_REDIS_URL", None)
            get_settings.cache_clear()


def wait_for_edition(edition_id: int, *, timeout: float = 600) -> None:
    """Follow a send with a progress bar until every delivery has a final state."""
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("[bold]Sending edition {task.fields[edition]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]} · failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("send", total=None, edition=edition_id, sent=0, failed=0)
        while True:
            with session_scope() as session:
                state = progress(session, edition_id, now=utcnow())
            bar.update(
                task, total=state.total or None, completed=state.done,
                sent=state.sent, failed=state.failed,
            )  # fmt: skip
            if state.status == "sent" or (state.total and state.remaining == 0):
                bar.update(task, total=state.total, completed=state.done)
                return
            if time.monotonic() > deadline:
                raise CommandError(
                    f"edition {edition_id} still has {state.remaining} deliveries after "
                    f"{timeout:.0f}s; is a worker running? "
                    f"(`newsletter digest status {edition_id}`)"
                )
            time.sleep(0.25)
