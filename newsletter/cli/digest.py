from __future__ import annotations

import dataclasses
import webbrowser
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli.common import (
    EMBEDDED_WORKER,
    CommandError,
    console,
    print_json,
    queue,
    settings,
    utcnow,
    wait_for_edition,
)
from newsletter.db import session_scope
from newsletter.delivery.marks import marks_for
from newsletter.delivery.prepared import Recipient, prepare_edition
from newsletter.delivery.progress import progress
from newsletter.editions import sending, service
from newsletter.editions.build import build_edition
from newsletter.editions.errors import TransitionError
from newsletter.handoff import enqueue_batches, resume_reconciled
from newsletter.inbound.stats import EditionOutcomes, ListRates, edition_outcomes, list_rates
from newsletter.lists.schedule import local_date, zone
from newsletter.lists.service import get_list
from newsletter.models import Edition, EditionStatus, Frequency

app = typer.Typer(help="Editions: build, preview, send and follow.", no_args_is_help=True)

PREVIEW_READER = Recipient(delivery_id=0, subscriber_id=0, email="reader@example.com")


def _edition(session: object, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)  # type: ignore[attr-defined]
    if edition is None:
        raise CommandError(f"no edition {edition_id} (see `newsletter digest build`)")
    assert isinstance(edition, Edition)
    return edition


@app.command()
def build(
    list_slug: Annotated[str, typer.Option("--list", "-l", help="List slug.")],
    day: Annotated[
        str | None,
        typer.Option("--date", help="YYYY-MM-DD in the list's timezone (default today)."),
    ] = None,
    frequency: Annotated[
        Frequency, typer.Option(help="daily, or weekly: the week's posts for weekly readers.")
    ] = Frequency.DAILY,
) -> None:
    """Assemble and render a list's edition for a date (once; later calls show the same one)."""
    now = utcnow()
    with session_scope() as session:
        nl = get_list(session, list_slug)
        assert nl is not None
        try:
            target = date.fromisoformat(day) if day else local_date(nl.timezone, now)
        except ValueError:
            raise CommandError(f"--date {day!r} is not a date like 2026-05-15") from None
        result = build_edition(
            session, nl, target, now=now, settings=settings(), frequency=frequency
        )
        edition = result.edition
        verb = "Built" if result.created else "Found existing"
        if edition.status == EditionStatus.SKIPPED:
            console.print(
                f"{verb} edition {edition.id} of {nl.slug} for {target}: "
                f"skipped, {edition.skip_reason}."
            )
            return
        console.print(
            f"{verb} edition [bold]{edition.id}[/] of {nl.slug} for {target}: "
            f"{len(edition.items)} stories, {len(edition.html.encode()):,} bytes of HTML, "
            f"rendered in {edition.render_ms} ms ({edition.status.value})."
        )
        console.print(f"Subject: {edition.subject}")


@app.command()
def preview(
    edition_id: Annotated[int, typer.Argument(help="Edition ID.")],
    format: Annotated[str, typer.Option(help="html or text")] = "html",
    output: Annotated[
        Path | None, typer.Option(help="File to write (default var/preview/edition-ID.html).")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the file in a browser.")
    ] = False,
) -> None:
    """Write an edition as a sample reader would see it; text goes to the terminal."""
    with session_scope() as session:
        edition = _edition(session, edition_id)
        if edition.status == EditionStatus.SKIPPED:
            raise CommandError(f"edition {edition_id} was skipped: {edition.skip_reason}")
        text, html, _ = prepare_edition(edition, settings(), now=utcnow()).bodies(PREVIEW_READER)
    if format == "text":
        print(text)
        return
    path = output or Path("var/preview") / f"edition-{edition_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    console.print(f"Wrote {path} ({len(html.encode()):,} bytes).")
    if open_browser and not webbrowser.open(path.resolve().as_uri()):
        console.print(
            f"No browser could be opened here; open {path.resolve()} in one.", markup=False
        )


@app.command()
def send(
    edition_id: Annotated[int, typer.Argument(help="Edition ID.")],
    wait: Annotated[bool, typer.Option(help="Follow progress until done.")] = True,
    embedded_worker: EMBEDDED_WORKER = False,
) -> None:
    """Send an edition to every confirmed reader through the Celery queue (exactly once).

    With NEWSLETTER_REDIS_URL set, a worker must consume the queue (`newsletter worker`):
    with none, it asks (at a terminal) or stops, before anything is queued.
    """
    with session_scope() as session:
        edition = _edition(session, edition_id)
        if edition.status == EditionStatus.SKIPPED:
            raise TransitionError(f"edition {edition_id} was skipped: {edition.skip_reason}")
        if edition.status == EditionStatus.SENT:
            console.print(f"Edition {edition_id} was sent already; nothing new to send.")
            return status(edition_id)
        if edition.status == EditionStatus.SENDING:
            console.print(f"Edition {edition_id} is sending; queueing what remains of it.")
    _enqueue(edition_id, wait=wait, embedded_worker=embedded_worker)


def _enqueue(edition_id: int, *, wait: bool, embedded_worker: bool = False) -> None:
    """Hand a send to the workers after the commit; follow it when asked or run locally."""
    # With no worker nothing is queued; the database holds the send (a resumed or scheduled
    # one included), and `digest send` queues whatever of it is left.
    again = f"newsletter digest send {edition_id}"
    with queue(follow=wait, embedded_worker=embedded_worker, again=again) as workers:
        workers.handoff.send_edition(edition_id)
        console.print(f"Queued edition {edition_id}.")
        if wait or workers.local_worker:
            wait_for_edition(edition_id, workers=workers)
    status(edition_id)


@app.command()
def status(
    edition_id: Annotated[int, typer.Argument(help="Edition ID.")],
    format: Annotated[str, typer.Option(help="table or json")] = "table",
) -> None:
    """Delivery counts of an edition (sent, failed, skipped, remaining), what came back of
    it, why it paused itself, and its list's bounce and complaint rates over 30 days."""
    now = utcnow()
    with session_scope() as session:
        state = progress(session, edition_id, now=now)
        edition = _edition(session, edition_id)
        pause_reason, slug = edition.pause_reason, edition.newsletter_list.slug
        outcomes = edition_outcomes(session, edition_id)
        rates = list_rates(session, edition.list_id, now=now)
    if format == "json":
        print_json(
            {
                **dataclasses.asdict(state), "remaining": state.remaining,
                "pause_reason": pause_reason, "outcomes": _outcomes_json(outcomes),
                "list_rates_30d": {"list": slug, **_rates_json(rates)},
            }
        )  # fmt: skip
        return
    table = Table(
        "Edition", "Status", "Readers", "Sent", "Maybe twice", "Failed", "Skipped", "Uncertain",
        "Remaining",
    )  # fmt: skip
    table.add_row(str(state.edition_id), state.status, str(state.total), str(state.sent),
                  str(state.maybe_duplicate), str(state.failed), str(state.skipped),
                  str(state.uncertain), str(state.remaining))  # fmt: skip
    console.print(table)
    if pause_reason:
        console.print(f"Paused: {pause_reason}", markup=False)
    came_back = Table(
        "Delivered", "Hard bounces", "Soft bounces", "Refused (sender)", "Complaints",
        "Unsub. link", "Unsub. one-click", "Unsub. email", title="What came back",
    )  # fmt: skip
    came_back.add_row(*map(str, (
        outcomes.delivered, outcomes.bounced_hard, outcomes.bounced_soft,
        outcomes.refused_sender, outcomes.complaints, outcomes.unsubscribed_link,
        outcomes.unsubscribed_one_click, outcomes.unsubscribed_email,
    )))  # fmt: skip
    console.print(came_back)
    limit = " (at or over Gmail's 0.3%)" if rates.over_complaint_limit else ""
    console.print(
        f"{slug}, last {rates.days} days: {rates.delivered} delivered, hard bounces "
        f"{rates.hard_bounce_rate:.2%}, soft {rates.soft_bounce_rate:.2%}, complaints "
        f"{rates.complaint_rate:.2%}{limit}.",
        markup=False,
    )


def _outcomes_json(outcomes: EditionOutcomes) -> dict[str, object]:
    return {
        "delivered": outcomes.delivered,
        "bounced": {"hard": outcomes.bounced_hard, "soft": outcomes.bounced_soft},
        "refused_sender": outcomes.refused_sender,
        "complaints": outcomes.complaints,
        "unsubscribed": {
            "link": outcomes.unsubscribed_link,
            "one_click": outcomes.unsubscribed_one_click,
            "email": outcomes.unsubscribed_email,
        },
    }


def _rates_json(rates: ListRates) -> dict[str, object]:
    return {
        "days": rates.days,
        "delivered": rates.delivered,
        "bounced_hard": rates.bounced_hard,
        "bounced_soft": rates.bounced_soft,
        "complaints": rates.complaints,
        "hard_bounce_rate": rates.hard_bounce_rate,
        "soft_bounce_rate": rates.soft_bounce_rate,
        "complaint_rate": rates.complaint_rate,
        "over_complaint_limit": rates.over_complaint_limit,
    }


@app.command()
def reconcile(
    stale_minutes: Annotated[
        float | None, typer.Option(help="Idle time after which a batch counts as lost.")
    ] = None,
) -> None:
    """Recover sends whose worker died or whose tasks were lost (beat runs this every 5 min).

    A stopped worker's message in flight (one per batch) is marked uncertain, never sent
    twice; the rest of its batch goes back to the queue and out, once its lease has expired.
    """
    config = settings()
    stale = timedelta(
        minutes=stale_minutes if stale_minutes is not None else config.stale_claim_minutes
    )
    with session_scope() as session:
        result = sending.reconcile(
            session, now=utcnow(), stale_after=stale, marks=marks_for(config.redis_url)
        )
    resumed = sorted({batch.edition_id for batch in result.stranded} | set(result.editions))
    recorded = (
        f"{result.recorded} recorded as sent (accepted before their worker stopped); "
        if result.recorded
        else ""
    )
    console.print(
        f"{recorded}{result.uncertain} deliveries marked uncertain (in flight when their worker "
        f"stopped); {result.untried} never tried, queued again; "
        f"editions to resume: {', '.join(map(str, resumed)) or 'none'}."
    )
    if resumed:
        with queue(follow=False) as workers:
            resume_reconciled(result, workers.handoff, config)
            if workers.local_worker:
                for edition_id in resumed:
                    wait_for_edition(edition_id)


@app.command("retry-uncertain")
def retry_uncertain(edition_id: Annotated[int, typer.Argument(help="Edition ID.")]) -> None:
    """Send an edition's uncertain deliveries again, accepting that some readers may get two.

    Only deliveries whose first attempt can no longer complete go (their claim's lease ended
    more than smtp_timeout ago); each is counted as a possible duplicate in `digest status`.
    """
    with session_scope() as session:
        requeued = sending.retry_uncertain(session, edition_id, now=utcnow(), settings=settings())
    if requeued.waiting:
        ready = f" after {requeued.ready_at:%H:%M:%S} UTC" if requeued.ready_at else ""
        console.print(
            f"{requeued.waiting} uncertain deliveries of edition {edition_id} may still be "
            f"completed by the worker that claimed them; retry them{ready}."
        )
    if not requeued.queued:
        if not requeued.waiting:
            console.print(f"Edition {edition_id} has no uncertain deliveries.")
        return
    console.print(
        f"Queued {requeued.queued} uncertain deliveries of edition {edition_id} again "
        "(counted as possible duplicates)."
    )
    with queue(follow=False) as workers:
        enqueue_batches(edition_id, workers.handoff, settings())
        if workers.local_worker:
            wait_for_edition(edition_id)


# --- An editor's controls: the same service the admin pages and the editor API use ----------


@app.command()
def draft(list_slug: Annotated[str, typer.Argument(help="List slug.")]) -> None:
    """Open today's edition of a list as a draft to look at (built now if need be)."""
    now = utcnow()
    with session_scope() as session:
        nl = get_list(session, list_slug)
        assert nl is not None
        result = service.todays_edition(session, nl, now=now, settings=settings())
        edition = result.edition
        verb = "Prepared" if result.created else "Found"
        console.print(
            f"{verb} edition [bold]{edition.id}[/] of {nl.slug} for {edition.edition_date} "
            f"({edition.status.value}): {len(edition.items)} "
            f"{'story' if len(edition.items) == 1 else 'stories'}."
        )
        if edition.status == EditionStatus.SKIPPED:
            console.print(f"Nothing to send yet: {edition.skip_reason}.")
        elif edition.scheduled_at is not None and edition.status in (
            EditionStatus.DRAFT, EditionStatus.SCHEDULED
        ):  # fmt: skip
            console.print(
                f"It goes out at {_local(edition.scheduled_at, nl.timezone)}"
                + (" once an editor approves it." if nl.requires_approval else ".")
            )
        console.print(f"Preview: `newsletter digest preview {edition.id}`.")


def _local(moment: datetime, timezone: str) -> str:
    local = moment.astimezone(zone(timezone))
    text = f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return text if timezone == "UTC" else f"{text} ({local:%H:%M} {timezone})"


@app.command()
def schedule(
    edition_id: Annotated[int, typer.Argument(help="Edition ID.")],
    at: Annotated[
        str,
        typer.Option(help='When, with its timezone: "2025-05-16T07:00:00+01:00", or "now".'),
    ],
    wait: Annotated[bool, typer.Option(help="Follow the send if it starts now.")] = True,
    embedded_worker: EMBEDDED_WORKER = False,
) -> None:
    """Approve a draft (or move a scheduled edition) to go out at a time."""
    now = utcnow()
    when = _parse_at(at, now)
    with session_scope() as session:
        edition = service.get_edition(session, edition_id)
        service.schedule(session, edition, when, now=now)
        timezone = edition.newsletter_list.timezone
    if when > now:
        console.print(
            f"Edition {edition_id} is scheduled for {_local(when, timezone)}; "
            "the dispatcher sends it then."
        )
        return
    _enqueue(edition_id, wait=wait, embedded_worker=embedded_worker)


def _parse_at(at: str, now: datetime) -> datetime:
    """``--at``: "now", or an ISO time; one without a timezone is left for the service to
    refuse in its own words."""
    if at.strip().lower() == "now":
        return now
    try:
        when = datetime.fromisoformat(at.strip())
        return when.astimezone(UTC) if when.tzinfo else when
    except ValueError:
        raise CommandError(
            f"--at {at!r} is not a time like 2025-05-16T07:00:00+01:00 (or now)"
        ) from None
    except OverflowError:  # 9999-12-31T23:00-05:00 has no UTC
        raise CommandError(f"--at {at!r} is too far from today to schedule") from None


@app.command()
def pause(edition_id: Annotated[int, typer.Argument(help="Edition ID.")]) -> None:
    """Stop a send within one group of messages; `digest resume` carries on from there."""
    with session_scope() as session:
        service.pause(session, service.get_edition(session, edition_id))
    with session_scope() as session:
        state = progress(session, edition_id, now=utcnow())
    console.print(
        f"Paused edition {edition_id}: {state.sent} of {state.total} readers sent so far; "
        f"`newsletter digest resume {edition_id}` sends to the rest."
    )


@app.command()
def resume(
    edition_id: Annotated[int, typer.Argument(help="Edition ID.")],
    wait: Annotated[bool, typer.Option(help="Follow progress until done.")] = True,
    embedded_worker: EMBEDDED_WORKER = False,
) -> None:
    """Carry on a paused send where it stopped; nobody already sent gets it twice."""
    with session_scope() as session:
        service.resume(session, service.get_edition(session, edition_id))
    console.print(f"Resumed edition {edition_id}.")
    _enqueue(edition_id, wait=wait, embedded_worker=embedded_worker)


@app.command()
def cancel(edition_id: Annotated[int, typer.Argument(help="Edition ID.")]) -> None:
    """Call an edition off: readers not yet sent to never get it. Cannot be undone."""
    with session_scope() as session:
        dropped = service.cancel(session, service.get_edition(session, edition_id), now=utcnow())
    with session_scope() as session:
        state = progress(session, edition_id, now=utcnow())
    console.print(
        f"Cancelled edition {edition_id}: {dropped} readers not yet sent to will not get it "
        f"({state.sent} had been sent)."
    )
