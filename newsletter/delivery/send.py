"""Sending an edition: the ledger of deliveries is the source of truth.

``start_sending`` creates one delivery row per confirmed reader inside the database and
returns the batches to enqueue (after the caller commits). ``deliver_batch`` sends one batch
over one transport connection. A row is claimed before its message leaves and marked sent
only once the server accepted it, so a batch run twice never mails anyone twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.delivery.errors import (
    ConnectionLost,
    DeliveryUncertain,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from newsletter.delivery.personalise import PreparedEdition, Recipient
from newsletter.delivery.transports import Transport
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Frequency,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)

_DELIVERIES = cast(Table, Delivery.__table__)


class SendError(ValueError):
    """An edition cannot be sent as asked; the message says why."""


@dataclass(frozen=True)
class BatchRange:
    """Deliveries of one edition with ``first_id <= id <= last_id``: a keyset range."""

    edition_id: int
    first_id: int
    last_id: int


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: int = 0  # temporary failures put back in the queue
    uncertain: int = 0  # the connection dropped while the server had the whole message
    connection_lost: bool = False
    retry_after: float | None = None  # held back by the relay's rate limit for this long
    more: bool = False  # stopped at its time budget with deliveries left in its range
    errors: list[str] = field(default_factory=list)

    @property
    def needs_retry(self) -> bool:
        return self.retry > 0


def _receives(frequency: Frequency) -> ColumnElement[bool]:
    """Readers of an edition: confirmed, not paused, on its frequency, not blocked."""
    return and_(
        Subscription.status == SubscriptionStatus.CONFIRMED,
        Subscription.paused_at.is_(None),
        Subscription.frequency == frequency,
        Subscriber.status == SubscriberStatus.ACTIVE,
    )


FANOUT_CHUNK = 50_000


def audience_size(session: Session, edition: Edition) -> int:
    """How many readers a send of the edition would reach now."""
    count = session.scalar(
        select(func.count())
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.list_id == edition.list_id, _receives(edition.frequency))
    )
    return int(count or 0)


def start_sending(
    session: Session, edition_id: int, *, now: datetime, chunk: int = FANOUT_CHUNK
) -> int:
    """Move a draft or scheduled edition to sending and create its deliveries; returns how many.

    Rows are created set-based, one INSERT ... SELECT per ``chunk`` readers (a keyset range
    of subscriber IDs), all in the caller's transaction: the edition is sending with all of
    its rows, or not sending with none. Only the caller whose UPDATE moves the edition to
    ``sending`` creates rows, so sending the same edition twice, even at once from two
    processes, creates them once.
    """
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise SendError(f"no edition {edition_id}")
    if edition.status in (EditionStatus.SKIPPED, EditionStatus.MISSED):
        raise SendError(f"edition {edition_id} was {edition.status.value}: {edition.skip_reason}")
    if edition.status == EditionStatus.CANCELLED:
        raise SendError(f"edition {edition_id} was cancelled by an editor")
    moved = session.execute(
        update(Edition)
        .where(
            Edition.id == edition_id,
            Edition.status.in_([EditionStatus.DRAFT, EditionStatus.SCHEDULED]),
        )
        .values(status=EditionStatus.SENDING, send_started_at=now)
        .execution_options(synchronize_session=False)
    )
    if not affected_rows(moved):
        return 0
    created, after = 0, 0
    while (upto := _next_bound(session, edition.list_id, after, chunk)) is not None:
        created += _create_deliveries(session, edition, after, upto, now)
        after = upto
    # No reader at all: nothing will ever finish the edition, so finish it now.
    finish_if_complete(session, edition_id, now=now)
    session.refresh(edition)
    return created


def _next_bound(session: Session, list_id: int, after: int, chunk: int) -> int | None:
    """The subscriber ID that ends the next ``chunk`` subscriptions of the list past ``after``."""
    ids = (
        select(Subscription.subscriber_id)
        .where(Subscription.list_id == list_id, Subscription.subscriber_id > after)
        .order_by(Subscription.subscriber_id)
        .limit(chunk)
        .subquery()
    )
    bound = session.scalar(select(func.max(ids.c.subscriber_id)))
    return None if bound is None else int(bound)


def _create_deliveries(
    session: Session, edition: Edition, after: int, upto: int, now: datetime
) -> int:
    readers = (
        select(
            literal(edition.id),
            Subscription.subscriber_id,
            literal(DeliveryStatus.QUEUED.value),
            literal(0),
            literal(""),
            literal(now, Delivery.created_at.type),
            literal(now, Delivery.updated_at.type),
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id == edition.list_id,
            Subscription.subscriber_id > after,
            Subscription.subscriber_id <= upto,
            _receives(edition.frequency),
        )
        .where(
            ~exists().where(
                Delivery.edition_id == edition.id,
                Delivery.subscriber_id == Subscription.subscriber_id,
            )
        )
        .order_by(Subscription.subscriber_id)
    )
    columns = ["edition_id", "subscriber_id", "status", "attempts", "last_error",
               "created_at", "updated_at"]  # fmt: skip
    # A Core insert of the table: the ORM's bulk-insert path would not report a row count.
    return affected_rows(
        session.execute(
            insert(_DELIVERIES).from_select(columns, readers),
            execution_options={"preserve_rowcount": True},
        )
    )


def pending_batches(session: Session, edition_id: int, batch_size: int) -> list[BatchRange]:
    """Keyset ranges over the edition's queued deliveries, ``batch_size`` rows each."""
    numbered = (
        select(
            Delivery.id.label("id"),
            func.row_number().over(order_by=Delivery.id).label("n"),
        )
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.QUEUED)
        .subquery()
    )
    bounds = session.execute(
        select(func.min(numbered.c.id), func.max(numbered.c.id))
        .group_by((numbered.c.n - 1) // batch_size)
        .order_by(func.min(numbered.c.id))
    ).all()
    return [BatchRange(edition_id, int(first), int(last)) for first, last in bounds]


def prepare_edition(edition: Edition, settings: Settings, *, now: datetime) -> PreparedEdition:
    nl = edition.newsletter_list
    return PreparedEdition(
        edition_id=edition.id,
        list_id=nl.id,
        list_slug=nl.slug,
        list_name=nl.name,
        subject=edition.subject,
        html=edition.html,
        text=edition.text,
        from_name=nl.from_name,
        from_address=nl.from_address,
        reply_to=nl.reply_to,
        domain=settings.message_domain,
        base_url=settings.base_url,
        secret_key=settings.secret_key,
        date=now,
    )


@dataclass
class _Outcomes:
    """What happened to one claimed group of deliveries, written back in a few statements."""

    sent: list[dict[str, object]] = field(default_factory=list)
    settled: list[dict[str, object]] = field(default_factory=list)  # failed, queued, uncertain
    skipped: list[int] = field(default_factory=list)


_BY_ID = _DELIVERIES.c.id == bindparam("b_id")
LEFT_BEFORE_TURN = "the reader left the list before their turn"


def _write(session: Session, outcomes: _Outcomes, now: datetime) -> None:
    """Record a group's outcomes: one executemany per kind, not one commit per message."""
    table = _DELIVERIES
    if outcomes.sent:
        session.execute(
            update(table).where(_BY_ID).values(
                status=DeliveryStatus.SENT, claim=None, last_error="",
                attempts=table.c.attempts + 1, message_id=bindparam("b_message_id"),
                sent_at=bindparam("b_at"), updated_at=bindparam("b_at"),
            ),
            outcomes.sent,
        )  # fmt: skip
    if outcomes.settled:
        session.execute(
            update(table).where(_BY_ID).values(
                status=bindparam("b_status"), claim=None, last_error=bindparam("b_error"),
                attempts=bindparam("b_attempts"), message_id=bindparam("b_message_id"),
                updated_at=now,
            ),
            outcomes.settled,
        )  # fmt: skip
    if outcomes.skipped:
        session.execute(
            update(table)
            .where(table.c.id.in_(outcomes.skipped))
            .values(
                status=DeliveryStatus.SKIPPED, claim=None, last_error=LEFT_BEFORE_TURN,
                updated_at=now,
            )
        )  # fmt: skip


def _claim_next(
    session: Session, batch: BatchRange, after_id: int, limit: int, now: datetime
) -> list[int]:
    """Claim the next ``limit`` queued deliveries of the range past ``after_id``; [] at its end.

    Walking forward means a row this run put back in the queue waits for the task's retry.
    A concurrent run of the same range claims disjoint rows: the UPDATE re-checks the status.
    """
    while True:
        candidates = session.scalars(
            select(Delivery.id)
            .where(
                Delivery.edition_id == batch.edition_id,
                Delivery.id.between(max(batch.first_id, after_id + 1), batch.last_id),
                Delivery.status == DeliveryStatus.QUEUED,
            )
            .order_by(Delivery.id)
            .limit(limit)
        ).all()
        if not candidates:
            return []
        claimed = session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(candidates), Delivery.status == DeliveryStatus.QUEUED)
            .values(status=DeliveryStatus.SENDING, claim=uuid.uuid4().hex, updated_at=now)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
        if claimed:
            return sorted(claimed)
        after_id = candidates[-1]


def _recipients(
    session: Session, ids: list[int], list_id: int
) -> list[tuple[Recipient, int, bool]]:
    """Each claimed delivery's reader, attempts so far, and whether they still receive it.

    Checked again at sending time: a reader who left since the send began is skipped.
    """
    rows = session.execute(
        select(
            Delivery.id, Delivery.subscriber_id, Delivery.attempts, Subscriber.email,
            Subscription.status, Subscription.paused_at, Subscriber.status,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .outerjoin(Subscription, and_(
            Subscription.subscriber_id == Delivery.subscriber_id,
            Subscription.list_id == list_id,
        ))
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()  # fmt: skip
    return [
        (
            Recipient(delivery_id, subscriber_id, email),
            attempts,
            subscription_status == SubscriptionStatus.CONFIRMED
            and paused_at is None
            and subscriber_status == SubscriberStatus.ACTIVE,
        )
        for delivery_id, subscriber_id, attempts, email, subscription_status, paused_at,
        subscriber_status in rows
    ]  # fmt: skip


def deliver_batch(
    session: Session,
    batch: BatchRange,
    transport: Transport,
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    budget_s: float | None = None,
) -> BatchResult:
    """Send one batch, a group of ``delivery_flush_size`` deliveries at a time.

    Each group is claimed, sent, and its outcomes written back in the same commit that claims
    the next group. This is the one domain function that commits: the ledger must hold every
    claim before its messages leave. If the process dies mid-group, the group's unrecorded
    rows are left ``sending`` under their claim, and the reconciler counts them uncertain.

    The batch stops early, leaving the rest queued, when the edition stops sending (paused or
    cancelled) or after ``budget_s`` seconds (``result.more`` then asks for another run).
    """
    result = BatchResult()
    edition = session.get(Edition, batch.edition_id)
    if edition is None:
        return result
    prepared = prepare_edition(edition, settings, now=clock())
    list_id, sender = edition.list_id, prepared.from_address
    started = time.monotonic()
    outcomes = _Outcomes()
    after_id = 0
    with transport:
        while True:
            _write(session, outcomes, clock())
            status = session.scalar(select(Edition.status).where(Edition.id == batch.edition_id))
            if status != EditionStatus.SENDING:
                break
            if budget_s is not None and time.monotonic() - started > budget_s:
                result.more = True
                break
            ids = _claim_next(session, batch, after_id, settings.delivery_flush_size, clock())
            session.commit()
            if not ids:
                break
            after_id = ids[-1]
            outcomes = _send_group(
                _recipients(session, ids, list_id), prepared, sender, transport, settings, result,
                clock,
            )  # fmt: skip
            if result.connection_lost or result.retry_after is not None:
                _write(session, outcomes, clock())
                break
    finish_if_complete(session, batch.edition_id, now=clock())
    session.commit()
    return result


def _send_group(
    group: list[tuple[Recipient, int, bool]],
    prepared: PreparedEdition,
    sender: str,
    transport: Transport,
    settings: Settings,
    result: BatchResult,
    clock: Callable[[], datetime],
) -> _Outcomes:
    outcomes = _Outcomes()
    for index, (recipient, attempts, receives) in enumerate(group):
        if not receives:
            outcomes.skipped.append(recipient.delivery_id)
            result.skipped += 1
            continue
        message = prepared.personalise(recipient)
        try:
            transport.send(sender, recipient.email, message.data)
        except PermanentFailure as error:
            outcomes.settled.append(_settled(recipient, DeliveryStatus.FAILED, attempts + 1,
                                             str(error), message.message_id))  # fmt: skip
            result.failed += 1
        except TemporaryFailure as error:
            outcomes.settled.append(
                _requeue_or_fail(recipient, attempts + 1, str(error), message.message_id,
                                 settings, result)
            )  # fmt: skip
        except DeliveryUncertain as error:
            outcomes.settled.append(_settled(recipient, DeliveryStatus.UNCERTAIN, attempts + 1,
                                             str(error), message.message_id))  # fmt: skip
            result.uncertain += 1
        except Throttled as error:
            # Held back before it left: neither it nor the rest used up an attempt.
            result.retry_after = error.retry_after
            for waiting, waiting_attempts, _ in group[index:]:
                outcomes.settled.append(
                    _settled(waiting, DeliveryStatus.QUEUED, waiting_attempts, str(error), None)
                )
            break
        except ConnectionLost as error:
            # Neither this message nor any after it left: all of them go back to the queue.
            result.connection_lost = True
            outcomes.settled.append(
                _requeue_or_fail(recipient, attempts + 1, str(error), message.message_id,
                                 settings, result)
            )  # fmt: skip
            for later, later_attempts, _ in group[index + 1 :]:
                outcomes.settled.append(
                    _requeue_or_fail(later, later_attempts, str(error), None, settings, result)
                )
            break
        else:
            outcomes.sent.append(
                {"b_id": recipient.delivery_id, "b_message_id": message.message_id,
                 "b_at": clock()}
            )  # fmt: skip
            result.sent += 1
    return outcomes


def _settled(
    recipient: Recipient, status: DeliveryStatus, attempts: int, error: str, message_id: str | None
) -> dict[str, object]:
    return {
        "b_id": recipient.delivery_id, "b_status": status, "b_attempts": attempts,
        "b_error": error, "b_message_id": message_id,
    }  # fmt: skip


def _requeue_or_fail(
    recipient: Recipient,
    attempts: int,
    error: str,
    message_id: str | None,
    settings: Settings,
    result: BatchResult,
) -> dict[str, object]:
    if attempts >= settings.max_delivery_attempts:
        result.failed += 1
        result.errors.append(error)
        return _settled(recipient, DeliveryStatus.FAILED, attempts, error, message_id)
    result.retry += 1
    return _settled(recipient, DeliveryStatus.QUEUED, attempts, error, message_id)


def finish_if_complete(session: Session, edition_id: int, *, now: datetime) -> bool:
    """Mark the edition sent once no delivery is queued or in flight."""
    unfinished = exists().where(
        Delivery.edition_id == edition_id,
        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
    )
    done = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status == EditionStatus.SENDING, ~unfinished)
        .values(status=EditionStatus.SENT, sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(done) > 0


@dataclass(frozen=True)
class Progress:
    edition_id: int
    status: str
    total: int
    sent: int
    failed: int
    skipped: int
    uncertain: int
    queued: int
    sending: int

    @property
    def remaining(self) -> int:
        return self.queued + self.sending

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.uncertain


def progress(session: Session, edition_id: int) -> Progress:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise SendError(f"no edition {edition_id}")
    session.refresh(edition)
    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.edition_id == edition_id)
            .group_by(Delivery.status)
        ).all()
    )

    def get(status: DeliveryStatus) -> int:
        return int(counts.get(status, 0))

    return Progress(
        edition_id=edition_id,
        status=edition.status.value,
        total=sum(int(v) for v in counts.values()),
        sent=get(DeliveryStatus.SENT),
        failed=get(DeliveryStatus.FAILED),
        skipped=get(DeliveryStatus.SKIPPED),
        uncertain=get(DeliveryStatus.UNCERTAIN),
        queued=get(DeliveryStatus.QUEUED),
        sending=get(DeliveryStatus.SENDING),
    )
