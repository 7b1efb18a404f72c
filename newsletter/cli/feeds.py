"""``newsletter feeds``: the RSS and Atom feeds polled for new posts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Column, Table

from newsletter.cli.common import CommandError, console, print_json, settings, utcnow, when
from newsletter.db import session_scope
from newsletter.feeds import (
    FeedError,
    PollResult,
    add_feed,
    due_feeds,
    feed_status,
    get_feed,
    list_feeds,
    poll_due_feed,
    resume_feed,
)
from newsletter.models import Feed

app = typer.Typer(help="Feeds: add, list, poll and resume.", no_args_is_help=True)


@contextmanager
def _as_command_errors() -> Iterator[None]:
    try:
        yield
    except FeedError as error:
        raise CommandError(str(error)) from None


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="The feed's http(s) URL.")],
    name: Annotated[str, typer.Option(help="Shown in lists (default: the host name).")] = "",
    every: Annotated[int, typer.Option(help="Minutes between polls.")] = 15,
) -> None:
    """Add a feed; the poller (beat, or `newsletter feeds poll`) reads it at its next run."""
    with _as_command_errors(), session_scope() as session:
        feed = add_feed(
            session, url, name, every, now=utcnow(),
            allow_private=settings().allow_private_feeds,
        )  # fmt: skip
        console.print(
            f"Added feed [bold]{feed.id}[/] ({feed.name}), polled every {feed.poll_minutes} "
            "minutes. `newsletter feeds poll` reads it now."
        )


def _row(feed: Feed) -> dict[str, object]:
    return {
        "id": feed.id,
        "name": feed.name,
        "url": feed.url,
        "every_minutes": feed.poll_minutes,
        "status": feed_status(feed),
        "errors_in_a_row": feed.consecutive_errors,
        "last_error": feed.last_error,
        "last_success_at": feed.last_success_at,
        "next_poll_at": None if feed.paused_at else feed.next_poll_at,
        "paused_at": feed.paused_at,
    }


@app.command("list")
def list_(format: Annotated[str, typer.Option(help="table or json")] = "table") -> None:
    """Every feed with its status, errors in a row, last error and next poll."""
    with session_scope() as session:
        feeds = list_feeds(session)
    if format == "json":
        print_json([_row(feed) for feed in feeds])
        return
    if not feeds:
        console.print("No feeds yet: `newsletter feeds add URL`.")
        return
    table = Table("ID", "Name", Column("URL", overflow="fold"), "Every", "Status",
                  "Last success", "Next poll", "Last error")  # fmt: skip
    for feed in feeds:
        status: str = feed_status(feed)
        if feed.consecutive_errors:
            status += f" ({feed.consecutive_errors} in a row)"
        table.add_row(
            str(feed.id), feed.name, feed.url, f"{feed.poll_minutes} min", status,
            when(feed.last_success_at),
            "when resumed" if feed.paused_at else when(feed.next_poll_at),
            feed.last_error,
        )  # fmt: skip
    console.print(table)


def _outcome(feed: Feed, result: PollResult | None) -> str:
    if result is None:
        return f"feed {feed.id} ({feed.name}): polled by another poller meanwhile"
    if not result.ok:
        then = "paused until resumed" if result.paused else "will be tried again later"
        return f"feed {feed.id} ({feed.name}): [red]failed[/], {result.error}; {then}"
    if result.not_modified:
        return f"feed {feed.id} ({feed.name}): unchanged since the last poll"
    skipped = f", {len(result.item_errors)} items skipped" if result.item_errors else ""
    return (
        f"feed {feed.id} ({feed.name}): {result.created} new posts, "
        f"{result.updated} updated{skipped}"
    )


@app.command()
def poll() -> None:
    """Poll every due feed now, as the beat task does each minute."""
    config = settings()
    with session_scope() as session:
        due = due_feeds(session, utcnow())
    if not due:
        console.print("No feed is due (`newsletter feeds list` shows when each is next).")
        return
    columns = (TextColumn("[bold]Polling feeds"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    outcomes = []
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=len(due))
        for feed in due:
            bar.update(task, description=feed.name)
            outcomes.append(_outcome(feed, poll_due_feed(feed.id, config, clock=utcnow)))
            bar.advance(task)
    for line in outcomes:
        console.print(line)


@app.command()
def resume(feed_id: Annotated[int, typer.Argument(help="Feed ID.")]) -> None:
    """Poll a paused or failing feed again at the next run, its backoff forgotten."""
    with _as_command_errors(), session_scope() as session:
        feed = get_feed(session, feed_id)
        was = feed_status(feed)
        resume_feed(feed, utcnow())
        console.print(
            f"Feed {feed.id} ({feed.name}) was {was}; it is polled at the next run "
            "(`newsletter feeds poll` polls it now)."
        )
