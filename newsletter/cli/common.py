"""What every command shares: settings, console output, errors, the queue and waiting."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from newsletter.clock import Clock, clock_for
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.delivery.progress import progress
from newsletter.handoff import CeleryHandoff, Handoff
from newsletter.text import without_password

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
    # The deployment's workers on the queue, asked over the broker (None: the worker is ours).
    consumers: Callable[[], list[str]] | None = None
    where: str = ""  # the queue and its broker, for messages


# The option of every command that can follow a send, for when no worker consumes the queue.
EMBEDDED_WORKER = Annotated[
    bool,
    typer.Option(
        "--embedded-worker",
        help="With no worker consuming the queue, send through a Celery worker run by this "
        "command (it stops when the command ends).",
    ),
]


@contextmanager
def queue(
    *, follow: bool = True, embedded_worker: bool = False, again: str | None = None
) -> Iterator[Queue]:
    """Make the broker reachable for this command; yields the hand-off to its workers.

    With NEWSLETTER_REDIS_URL set, tasks go to that Redis and the deployment's workers. A
    command that follows its work (``follow``) first asks whether a worker consumes the
    queue; if none answers, it runs one of its own when ``embedded_worker`` is set or the
    person at the terminal agrees, and otherwise stops having queued nothing, saying how to
    start one and then run ``again`` (the command that sends what is left). A command that
    does not follow queues its work, and warns when no worker is there to take it. Unset,
    an embedded Redis and a Celery worker run under var/ for as long as this command does.
    """
    current = settings()
    if current.redis_url:
        handoff = CeleryHandoff(current)
        where = f"queue '{handoff.queue}' on {without_password(current.redis_url)}"
        if not follow:
            yield Queue(handoff, local_worker=False, where=where)
            if not handoff.consumers():
                errors.print(
                    f"[yellow]warning:[/] no worker is consuming {where} yet: what was queued "
                    "waits for one (`newsletter worker`).",
                    highlight=False,
                )
            return
        if handoff.consumers():
            yield Queue(handoff, local_worker=False, consumers=handoff.consumers, where=where)
            return
        if not (embedded_worker or _worker_wanted(where)):
            then = (
                f"then run `{again}`; or run `{again} --embedded-worker` to send through a "
                "worker of its own."
                if again
                else "then run this again."
            )
            raise CommandError(
                f"no worker is consuming {where}, so nothing was queued. Start one with "
                f"`newsletter worker`, {then}"
            )
        with _own_worker(current, current.redis_url, f"a Celery worker for {where}"):
            yield Queue(handoff, local_worker=True, where=where)
        return
    from newsletter.runtime import embedded_redis

    with embedded_redis(Path("var") / "redis") as url:
        os.environ["NEWSLETTER_REDIS_URL"] = url
        get_settings.cache_clear()
        try:
            with _own_worker(current, url, "an embedded Redis and a Celery worker"):
                yield Queue(CeleryHandoff(settings()), local_worker=True)
        finally:
            os.environ.pop("NEWSLETTER_REDIS_URL", None)
            get_settings.cache_clear()


def _worker_wanted(where: str) -> bool:
    """Ask the person at the terminal, if there is one, to send through a worker of ours."""
    if not sys.stdin.isatty():
        return False
    errors.print(
        f"No worker is consuming {where}: nothing would send this. Start one with "
        "`newsletter worker` (in another terminal, or as a service).",
        highlight=False,
    )
    return typer.confirm("Send through a worker run by this command instead?", default=True)


@contextmanager
def _own_worker(config: Settings, redis_url: str, what: str) -> Iterator[None]:
    """A Celery worker on the settings' queue for as long as this command runs. What it has
    not finished when it stops goes back to the queue, for the deployment's workers."""
    from newsletter.runtime import celery_worker

    env = {
        "NEWSLETTER_REDIS_URL": redis_url,
        "NEWSLETTER_DATABASE_URL": config.database_url,
        "NEWSLETTER_OUTBOX_DIR": str(config.outbox_dir),
    }
    console.print(f"[dim]Started {what} (var/worker.log).[/]", highlight=False)
    with celery_worker(env, Path("var") / "worker.log", queue=config.celery_queue):
        yield


# Nothing moved on the progress bar this long: ask whether a worker is still there.
STALL_S = 5.0


def wait_for_edition(
    edition_id: int, *, timeout: float = 600, workers: Queue | None = None
) -> None:
    """Follow a send with a progress bar until every delivery has a final state; with the
    deployment's ``workers``, stop and say so when none is left to do it."""
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
        seen, moved_at = None, time.monotonic()
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
            if (state.status, state.total, state.done) != seen:
                seen, moved_at = (state.status, state.total, state.done), time.monotonic()
            elif workers and workers.consumers and time.monotonic() - moved_at > STALL_S:
                if not workers.consumers():
                    raise CommandError(
                        f"no worker is consuming {workers.where} any more; edition "
                        f"{edition_id} stands at {state.sent} sent of {state.total or '?'}. "
                        "What is queued goes out once a worker runs (`newsletter worker`); "
                        f"`newsletter digest status {edition_id}` follows it."
                    )
                moved_at = time.monotonic()
            time.sleep(0.25)
