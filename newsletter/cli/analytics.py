"""``newsletter analytics``: write buffered clicks now, and forget readers' old clicks.

Beat runs both on its own (flush-clicks every minute, purge-reader-clicks daily); these
commands are for a deployment without beat, or to see what they do.
"""

from __future__ import annotations

import typer

from newsletter import handoff
from newsletter.analytics.flush import FlushResult
from newsletter.cli.common import console, settings, utcnow

app = typer.Typer(
    help="Clicks and opens: flush the buffer, purge readers' old clicks.", no_args_is_help=True
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
