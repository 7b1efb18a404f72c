from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.receipts import receipts_for
from newsletter.editions.lifecycle import start_sending
from newsletter.models import NewsletterList
from tests.factories import edition_with_readers


@pytest.fixture
def in_flight(session: Session) -> int:
    """Rows a stopped batch may leave unrecorded on this database: 1, or 2 on PostgreSQL,
    whose receipts are answered while the next message goes out."""
    return receipts_for(session, BatchRange(0, 0, 0)).in_flight


@pytest.fixture
def edition_id(
    request: pytest.FixtureRequest, session: Session, daily_list: NewsletterList, now: datetime,
    settings: Settings,
) -> int:  # fmt: skip
    """An edition being sent to the test module's ``READERS``, under its settings."""
    readers: list[str] = request.module.READERS
    edition = edition_with_readers(session, daily_list, readers, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    return edition.id
