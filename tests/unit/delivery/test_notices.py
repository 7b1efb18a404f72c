"""The confirmation request and the welcome email: who gets one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery import notices
from newsletter.models import NewsletterList, Subscriber, SubscriberStatus
from newsletter.subscriptions.service import Signup, find_subscriber, import_subscribers

ANN = "ann@example.com"
Build = Callable[..., notices.Notice | None]


@pytest.fixture
def ann(session: Session, daily_list: NewsletterList, now: datetime) -> Subscriber:
    import_subscribers(session, daily_list, [Signup(ANN)], now=now, source="test")
    reader = find_subscriber(session, ANN)
    assert reader is not None
    session.commit()
    return reader


@pytest.fixture
def blocked(session: Session, ann: Subscriber) -> Subscriber:
    """Ann, whose address bounced hard after her notice was queued."""
    ann.status = SubscriberStatus.BLOCKED
    session.commit()
    return ann


@pytest.mark.parametrize("notice", [notices.confirmation, notices.welcome])
def test_a_reader_gets_their_notice(
    notice: Build,
    session: Session,
    ann: Subscriber,
    daily_list: NewsletterList,
    settings: Settings,
    now: datetime,
) -> None:
    built = notice(session, ann.id, [daily_list.id], settings=settings, now=now)

    assert built is not None
    assert built.recipient == ANN


@pytest.mark.parametrize("notice", [notices.confirmation, notices.welcome])
def test_a_blocked_reader_gets_no_notice(
    notice: Build,
    session: Session,
    blocked: Subscriber,
    daily_list: NewsletterList,
    settings: Settings,
    now: datetime,
) -> None:
    assert notice(session, blocked.id, [daily_list.id], settings=settings, now=now) is None
