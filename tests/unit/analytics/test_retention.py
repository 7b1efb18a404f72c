"""Past click_retention_days nothing leads from an edition's engagement back to a reader."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.analytics.retention import purge_reader_clicks
from newsletter.config import Settings
from newsletter.models import EngagedMessage, NewsletterList, Subscriber
from tests.factories import edition_with_readers


def test_old_engagement_is_detached_from_its_reader_and_still_counted(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = edition_with_readers(
        session, daily_list, ["ann@example.com"], now=now, settings=settings
    )
    ann = session.scalars(select(Subscriber.id)).one()
    for ref, age in (("d1", 200), ("d2", 10)):
        session.add(EngagedMessage(
            edition_id=edition.id, kind="click", ref=ref, subscriber_id=ann,
            created_at=now - timedelta(days=age),
        ))  # fmt: skip
    session.commit()

    purge_reader_clicks(session, now=now, retention=timedelta(days=180))
    session.commit()

    rows = session.execute(select(EngagedMessage.ref, EngagedMessage.subscriber_id)).all()
    assert len(rows) == 2
    assert sorted((ref[0], who) for ref, who in rows) == [("d", ann), ("x", None)]
