"""Fan-out: one delivery row per reader of an edition, and the batches that send them.

The rows are the ledger of a send (one per (edition, reader) under a unique key). They are
created set-based, one INSERT ... SELECT per ``chunk`` readers, inside the caller's
transaction; :func:`pending_batches` then cuts the queued rows into keyset ranges, one
Celery task each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from newsletter.db import affected_rows
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    Frequency,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)

_DELIVERIES = cast(Table, Delivery.__table__)
FANOUT_CHUNK = 50_000


@dataclass(frozen=True)
class BatchRange:
    """Deliveries of one edition with ``first_id <= id <= last_id``: a keyset range."""

    edition_id: int
    first_id: int
    last_id: int


def _receives(frequency: Frequency) -> ColumnElement[bool]:
    """Readers of an edition: confirmed, not paused, on its frequency, not blocked."""
    return and_(
        Subscription.status == SubscriptionStatus.CONFIRMED,
        Subscription.paused_at.is_(None),
        Subscription.frequency == frequency,
        Subscriber.status == SubscriberStatus.ACTIVE,
    )


def audience_size(session: Session, edition: Edition) -> int:
    """How many readers a send of the edition would reach now."""
    count = session.scalar(
        select(func.count())
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.list_id == edition.list_id, _receives(edition.frequency))
    )
    return int(count or 0)


def create_deliveries(
    session: Session, edition: Edition, *, now: datetime, chunk: int = FANOUT_CHUNK
) -> int:
    """A queued delivery for every reader the edition goes to; returns how many were created.

    Only the caller that moved the edition to ``sending`` calls this (see
    :func:`newsletter.editions.lifecycle.start_sending`), so the rows are created once.
    """
    created, after = 0, 0
    while (upto := _next_bound(session, edition.list_id, after, chunk)) is not None:
        created += _create_deliveries(session, edition, after, upto, now)
        after = upto
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


def drop_queued(session: Session, edition_id: int, reason: str, *, now: datetime) -> int:
    """Skip every delivery of the edition still waiting in the queue; returns how many."""
    dropped = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, last_error=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(dropped)


def unfinished(edition_id: int) -> ColumnElement[bool]:
    """Whether any delivery of the edition is still queued or in flight."""
    return exists().where(
        Delivery.edition_id == edition_id,
        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
    )
