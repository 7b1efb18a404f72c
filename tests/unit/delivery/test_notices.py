"""The confirmation request and the welcome email: who gets one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery import notices
from newsletter.models import NewsletterList, Subscriber, SubscriberStatus
from newsletter.subscriptions.service import Signup, find_subscriber, import_subscribers
from tests.unit.delivery.test_headers import TEXTS, assert_well_folded, raw_value

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


@pytest.fixture(params=[notices.confirmation, notices.welcome], ids=["confirm", "welcome"])
def in_another_script(
    request: pytest.FixtureRequest, session: Session, ann: Subscriber,
    daily_list: NewsletterList, settings: Settings, now: datetime,
) -> bytes:  # fmt: skip
    """Ann's notice from a list named in Arabic, sent under a French name."""
    daily_list.name, daily_list.from_name = TEXTS["arabic"][:90], TEXTS["latin"][:80]
    session.commit()
    built = request.param(session, ann.id, [daily_list.id], settings=settings, now=now)
    assert built is not None
    return bytes(built.data)


def test_a_notice_in_another_script_reads_back_whole(in_another_script: bytes) -> None:
    message = message_from_bytes(in_another_script, policy=policy.default)
    assert message["Subject"].endswith(TEXTS["arabic"][:90].strip())
    assert str(make_header(decode_header(raw_value(in_another_script, "From")))) == (
        f"{TEXTS['latin'][:80].strip()} <digest@shortlysts.example.com>"
    )


def test_a_notice_in_another_script_has_short_encoded_words_on_folded_lines(
    in_another_script: bytes,
) -> None:
    assert_well_folded(in_another_script)


def test_a_notice_body_keeps_to_76_columns(in_another_script: bytes) -> None:
    body = in_another_script.split(b"\r\n\r\n", 1)[1]

    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # RFC 2045, quoted-printable
