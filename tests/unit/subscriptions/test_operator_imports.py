"""Readers added by an operator: consent recorded, and nobody who left is brought back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    NewsletterList,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import unsubscribe
from newsletter.subscriptions.service import Signup, find_subscriber, import_subscribers


def test_import_confirms_and_records_consent(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    report = import_subscribers(
        session, daily_list, [Signup("ann@example.com")], now=now, source="import"
    )
    event = session.scalars(select(ConsentEvent)).one()
    assert report.added == 1
    assert (event.action, event.source, event.email) == (
        ConsentAction.IMPORT, "import", "ann@example.com",
    )  # fmt: skip


def test_reimport_does_not_resubscribe_a_reader_who_left(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    import_subscribers(session, daily_list, [Signup("ann@example.com")], now=now, source="import")
    reader = find_subscriber(session, "ann@example.com")
    assert reader is not None
    unsubscribe(session, reader.id, daily_list.id, client=Client("one-click"), now=now)
    report = import_subscribers(
        session, daily_list, [Signup("ann@example.com")], now=now, source="import"
    )
    assert (report.added, report.already, report.left) == (0, 0, 1)
    statuses = session.scalars(select(Subscription.status)).all()
    assert statuses == [SubscriptionStatus.UNSUBSCRIBED]
