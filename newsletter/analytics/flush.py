"""Buffered clicks into the database: counts per link, per hour and per edition.

Beat runs :func:`flush` every minute (and an editor's report view runs it first). Clicks are
judged one message at a time and only once that message has been quiet for
``click_settle_seconds``, so a gateway's burst is always seen whole.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.analytics.buffer import ClickBuffer
from newsletter.analytics.machines import Click, Rules, classify
from newsletter.analytics.readers import Reader
from newsletter.config import Settings
from newsletter.models import (
    ClickFlush,
    ClickHour,
    ClickTracking,
    Delivery,
    Edition,
    EditionEngagement,
    EngagedMessage,
    ReaderClick,
    TrackedLink,
)
from newsletter.rendering.placeholders import WEB_READER

log = logging.getLogger(__name__)

# A message clicked without pause for this many settle periods is judged anyway.
_LONGEST_WAIT = 10


def rules_of(settings: Settings) -> Rules:
    return Rules(
        machine_seconds=settings.click_machine_seconds,
        burst_seconds=settings.click_burst_seconds,
        burst_share=settings.click_burst_share,
    )


def split_settled(
    lines: Sequence[str], *, now: float, settle: float
) -> tuple[list[str], list[str]]:
    """The lines of messages quiet for ``settle`` seconds, and the rest (given back)."""
    groups: dict[tuple[int, str], list[tuple[Click, str]]] = defaultdict(list)
    settled: list[str] = []
    for line in lines:
        click = Click.decode(line)
        if click is None:
            log.warning("click buffer: dropped a line that is no event: %.80r", line)
            continue
        if not click.ref:
            settled.append(line)
            continue
        groups[(click.edition_id, click.ref)].append((click, line))
    unsettled: list[str] = []
    for events in groups.values():
        last = max(click.at for click, _ in events)
        first = min(click.at for click, _ in events)
        quiet = now - last >= settle or now - first >= settle * _LONGEST_WAIT
        (settled if quiet else unsettled).extend(line for _, line in events)
    return settled, unsettled


@dataclass
class _Tally:
    links: dict[tuple[int, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    hours: dict[tuple[int, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    opens: dict[int, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    engaged: set[tuple[int, str, str]] = field(default_factory=set)
    readers: list[tuple[Click, str]] = field(default_factory=list)


def _upsert(
    session: Session, model: Any, values: list[dict[str, Any]], keys: list[str], add: list[str]
) -> None:
    """Insert rows, or add their ``add`` columns to the rows already there."""
    if not values:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model)
    if add:
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={name: getattr(model, name) + statement.excluded[name] for name in add},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    session.execute(statement, values)


def record_batch(
    session: Session, batch: str, lines: Sequence[str], *, now: datetime, rules: Rules
) -> int:
    """Write one settled batch; 0 if it was written before (a flush that died after its commit)."""
    if session.get(ClickFlush, batch) is not None:
        return 0
    clicks = [c for c in map(Click.decode, lines) if c is not None and c.ref != WEB_READER]
    editions = {
        row.id: row
        for row in session.execute(
            select(Edition.id, Edition.send_started_at, Edition.click_tracking).where(
                Edition.id.in_({c.edition_id for c in clicks})
            )
        )
    }
    link_ids = {
        (row.edition_id, row.number): row.id
        for row in session.execute(
            select(TrackedLink.edition_id, TrackedLink.number, TrackedLink.id).where(
                TrackedLink.edition_id.in_(editions)
            )
        )
    }
    links_in: dict[int, int] = defaultdict(int)
    for edition_id, _ in link_ids:
        links_in[edition_id] += 1
    known = [
        c for c in clicks
        if c.edition_id in editions and (c.kind == "o" or (c.edition_id, c.number) in link_ids)
    ]  # fmt: skip
    messages: dict[tuple[int, str], list[Click]] = defaultdict(list)
    for click in sorted(known, key=lambda c: c.at):
        # A click without a readable reader part is a message of its own.
        messages[(click.edition_id, click.ref or f"?{id(click)}")].append(click)
    tally = _Tally()
    for (edition_id, _), events in messages.items():
        reasons = classify(events, links_in_edition=links_in[edition_id], rules=rules)
        started = editions[edition_id].send_started_at
        for click, reason in zip(events, reasons, strict=True):
            machine = 1 if reason else 0
            if click.kind == "o":
                tally.opens[edition_id][machine] += 1
            else:
                tally.links[(edition_id, click.number)][machine] += 1
                if started is not None and click.at >= started.timestamp():
                    hour = int((click.at - started.timestamp()) // 3600)
                    tally.hours[(edition_id, hour)][machine] += 1
            if not reason and click.ref:
                tally.engaged.add((edition_id, "click" if click.kind == "c" else "open", click.ref))
            if editions[edition_id].click_tracking == ClickTracking.INDIVIDUAL:
                tally.readers.append((click, reason))
    _write(session, tally, editions, link_ids, now)
    session.add(ClickFlush(batch=batch, events=len(lines), flushed_at=now))
    return len(known)


def _write(
    session: Session,
    tally: _Tally,
    editions: dict[int, Any],
    link_ids: dict[tuple[int, int], int],
    now: datetime,
) -> None:
    for (edition_id, number), (human, machine) in tally.links.items():
        session.execute(
            update(TrackedLink)
            .where(TrackedLink.id == link_ids[(edition_id, number)])
            .values(human_clicks=TrackedLink.human_clicks + human,
                    machine_clicks=TrackedLink.machine_clicks + machine)
        )  # fmt: skip
    _upsert(session, ClickHour, [
        {"edition_id": e, "hour": h, "human": human, "machine": machine}
        for (e, h), (human, machine) in tally.hours.items()
    ], ["edition_id", "hour"], ["human", "machine"])  # fmt: skip
    subscribers = _subscribers_of(session, [(c.edition_id, c.ref) for c, _ in tally.readers])
    engaged = [
        {"edition_id": e, "kind": kind, "ref": ref, "created_at": now,
         "subscriber_id": subscribers.get((e, ref))}
        for e, kind, ref in tally.engaged
        # A delivery that is gone was an erased reader's: their message was counted once
        # already, under a ref erasure replaced.
        if not ref.startswith("d") or (e, ref) in subscribers
    ]  # fmt: skip
    _upsert(session, EngagedMessage, engaged, ["edition_id", "kind", "ref"], [])
    touched = set(editions)
    _upsert(session, EditionEngagement, [
        {"edition_id": e, "human_opens": 0, "machine_opens": 0, "unique_clickers": 0,
         "unique_openers": 0} for e in touched
    ], ["edition_id"], [])  # fmt: skip
    for edition_id, (human, machine) in tally.opens.items():
        session.execute(
            update(EditionEngagement)
            .where(EditionEngagement.edition_id == edition_id)
            .values(
                human_opens=EditionEngagement.human_opens + human,
                machine_opens=EditionEngagement.machine_opens + machine,
            )
        )
    for edition_id in touched:

        def unique(kind: str, edition_id: int = edition_id) -> Any:
            return (
                select(func.count()).select_from(EngagedMessage)
                .where(EngagedMessage.edition_id == edition_id, EngagedMessage.kind == kind)
                .scalar_subquery()
            )  # fmt: skip

        session.execute(
            update(EditionEngagement).where(EditionEngagement.edition_id == edition_id)
            .values(unique_clickers=unique("click"), unique_openers=unique("open"))
        )  # fmt: skip
    session.add_all(
        ReaderClick(
            edition_id=click.edition_id,
            link_id=link_ids.get((click.edition_id, click.number)) if click.kind == "c" else None,
            subscriber_id=subscribers[(click.edition_id, click.ref)],
            clicked_at=datetime.fromtimestamp(click.at, tz=now.tzinfo),
            machine=bool(reason), reason=reason,
        )
        for click, reason in tally.readers
        if (click.edition_id, click.ref) in subscribers
    )  # fmt: skip


def _subscribers_of(
    session: Session, refs: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """Whose delivery each individual reader part names (only the edition's own deliveries)."""
    wanted: dict[int, tuple[int, str]] = {}
    for edition_id, ref in refs:
        delivery_id = Reader(ref=ref, sent_at=0).delivery_id
        if delivery_id is not None:
            wanted[delivery_id] = (edition_id, ref)
    if not wanted:
        return {}
    rows = session.execute(
        select(Delivery.id, Delivery.edition_id, Delivery.subscriber_id).where(
            Delivery.id.in_(wanted)
        )
    )
    return {
        wanted[row.id]: row.subscriber_id for row in rows if wanted[row.id][0] == row.edition_id
    }


@dataclass(frozen=True)
class FlushResult:
    batches: int = 0
    clicks: int = 0
    waiting: int = 0


def flush(
    buffer: ClickBuffer,
    session_scope: Callable[[], AbstractContextManager[Session]],
    *,
    now: datetime,
    settings: Settings,
) -> FlushResult:
    """Write every settled click; give back the rest. Safe to run twice at once."""
    rules = rules_of(settings)
    batches, clicks, waiting = 0, 0, 0
    pending = buffer.batches()
    taken = buffer.take()
    if taken is not None:
        lines = buffer.read(taken)
        settled, unsettled = split_settled(
            lines, now=now.timestamp(), settle=settings.click_settle_seconds
        )
        buffer.keep(taken, settled, unsettled)
        waiting = len(unsettled)
        pending.append(taken)
    for batch in pending:
        lines = buffer.read(batch)
        with session_scope() as session:
            clicks += record_batch(session, batch, lines, now=now, rules=rules)
        buffer.finish(batch)
        batches += 1
    if clicks:
        log.info("clicks: wrote %d in %d batch(es); %d wait to settle", clicks, batches, waiting)
    return FlushResult(batches=batches, clicks=clicks, waiting=waiting)
