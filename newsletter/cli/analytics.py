"""``newsletter analytics``: an edition's report, write buffered clicks now, and forget
readers' old clicks.

Beat runs both on its own (flush-clicks every minute, purge-reader-clicks daily); these
commands are for a deployment without beat, or to see what they do.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from newsletter import handoff
from newsletter.analytics.export import report_csv, summary_rows
from newsletter.analytics.flush import FlushResult
from newsletter.analytics.report import edition_report
from newsletter.cli.common import console, fail, settings, utcnow
from newsletter.db import session_scope
from newsletter.inbound.stats import outcomes_of_editions

app = typer.Typer(
    help="Clicks and opens: an edition's report, flush the buffer, purge readers' old clicks.",
    no_args_is_help=True,
)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def flush_report(result: FlushResult) -> str:
    """What a flush did, in a sentence or two."""
    if not (result.batches or result.waiting):
        return "No clicks were waiting to be written."
    said = (
        f"Wrote {_plural(result.clicks, 'click or open', 'clicks and opens')} from "
        f"{_plural(result.batches, 'batch', 'batches')}."
        if result.batches
        else "Nothing was ready to write."
    )
    if result.waiting == 1:
        said += (
            " 1 more waits until its message has had no click for click_settle_seconds; a later "
            "flush writes it."
        )
    elif result.waiting:
        said += (
            f" {result.waiting} more wait until their messages have had no click for "
            "click_settle_seconds; a later flush writes them."
        )
    return said


@app.command()
def flush() -> None:
    """Write the clicks and opens buffered in Redis whose messages have settled."""
    config = settings()
    if not config.redis_url:
        console.print(
            "No Redis (NEWSLETTER_REDIS_URL is empty): clicks wait in the web process, "
            "which writes them itself."
        )
        return
    console.print(flush_report(handoff.flush_clicks(config, utcnow)))


@app.command()
def purge() -> None:
    """Delete readers' own clicks older than click_retention_days; the counts stay."""
    config = settings()
    deleted = handoff.purge_reader_clicks(config, utcnow)
    console.print(
        f"Deleted {_plural(deleted, 'reader click', 'reader clicks')} older than "
        f"{config.click_retention_days} days (click_retention_days); per-link and per-edition "
        "counts stay."
    )


@app.command()
def report(
    edition_id: Annotated[
        int,
        typer.Argument(
            help="The edition's id (as `newsletter digest status` and the admin show it)."
        ),
    ],
    csv: Annotated[bool, typer.Option("--csv", help="The CSV the admin downloads.")] = False,
) -> None:
    """What came of an edition: delivered, bounces, complaints, unsubscribes, clicks per story
    (people and machines apart). Settled clicks are written first."""
    config = settings()
    if config.redis_url:
        handoff.flush_clicks(config, utcnow)
    with session_scope(config.database_url) as session:
        found = edition_report(session, edition_id, outcomes_of=outcomes_of_editions)
    if found is None:
        raise fail(f"There is no edition {edition_id}: the admin's Editions page lists them.")
    if csv:
        sys.stdout.write(report_csv(found))
        return
    summary = Table("", "", show_header=False, box=None)
    for name, value in summary_rows(found):
        summary.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(summary)
    if not found.stories:
        return
    stories = Table("Place", "Story", "People", "Machines", title="Clicks per story")
    for story in found.stories:
        place = str(story.position) if story.position else "removed"
        stories.add_row(place, story.title, f"{story.human_clicks:,}", f"{story.machine_clicks:,}")
    console.print(stories)
