"""What came back, from the terminal: an edition's outcomes in ``digest status``, and the
blocked readers an operator lists and unblocks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.cli import common
from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.editions import lifecycle
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    Edition,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
)
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import unsubscribe
from tests.cli_runner import run
from tests.factories import edition_with_readers
from tests.returns import complaint, hard_bounce, reader_id, sent_edition, soft_bounce

READERS = ["ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"]
DEAD = "hard bounce 5.1.1 user unknown: 550 5.1.1 <x>: Recipient address rejected"


@pytest.fixture(autouse=True)
def cli_clock(clock: FrozenClock) -> Iterator[FrozenClock]:
    common.use_clock(clock)
    yield clock
    common.use_clock(None)


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    return sent_edition(session, daily_list, READERS, now=now, settings=settings)


def stored_status(session: Session, email: str) -> SubscriberStatus:
    session.expire_all()
    return session.scalars(select(Subscriber.status).where(Subscriber.email == email)).one()


# --- digest status ----------------------------------------------------------------------------


def test_digest_status_json_has_the_editions_outcomes_and_its_lists_rates(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    soft_bounce(session, edition, "bob@example.com", settings=settings, now=now)
    complaint(session, edition, "cat@example.com", settings=settings, now=now)
    unsubscribe(session, reader_id(session, "dan@example.com"), edition.list_id,
                client=Client(source="one-click"), now=now)  # fmt: skip
    session.commit()

    code, output = run("digest", "status", str(edition.id), "--format", "json")

    assert code == 0
    status = json.loads(output)
    assert (status["pause_reason"], status["outcomes"]) == ("", {
        "delivered": 4, "bounced": {"hard": 1, "soft": 1}, "refused_sender": 0,
        "complaints": 1, "unsubscribed": {"link": 0, "one_click": 1, "email": 0},
    })  # fmt: skip
    assert status["list_rates_30d"] == {
        "list": "daily", "days": 30, "delivered": 4, "bounced_hard": 1, "bounced_soft": 1,
        "complaints": 1, "hard_bounce_rate": 0.25, "soft_bounce_rate": 0.25,
        "complaint_rate": 0.25, "over_complaint_limit": True,
    }  # fmt: skip


def test_digest_status_says_why_an_edition_paused_itself(
    session: Session, daily_list: NewsletterList, settings: Settings, now: datetime
) -> None:
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    lifecycle.start_sending(session, edition.id, now=now)
    lifecycle.pause(session, edition, reason="Paused itself at 07:30 UTC: 3 of 4 bounced.")
    session.commit()

    code, output = run("digest", "status", str(edition.id))

    assert code == 0
    assert "Paused: Paused itself at 07:30 UTC: 3 of 4 bounced." in output


def test_digest_status_shows_the_lists_rates_in_words(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)

    code, output = run("digest", "status", str(edition.id))

    assert code == 0
    assert (
        "daily, last 30 days: 4 delivered, hard bounces 25.00%, soft 0.00%, complaints 0.00%."
        in output
    )


# --- subscribers blocked / unblock ------------------------------------------------------------


def test_blocked_lists_each_reader_with_when_and_why(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)

    code, output = run("subscribers", "blocked", "--format", "json")

    assert code == 0
    assert json.loads(output) == [{
        "email": "ann@example.com", "blocked_at": str(now), "why": DEAD, "bounce_score": 0.0,
    }]  # fmt: skip


def test_blocked_as_a_table_is_paged(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    complaint(session, edition, "bob@example.com", settings=settings, now=now + timedelta(hours=1))

    code, output = run("subscribers", "blocked", "--per-page", "1", "--page", "2")

    assert code == 0
    assert "Blocked readers (page 2 of 2, 2 in all)" in output
    assert "ann@example.com" in output
    assert "bob@example.com" not in output


def test_unblock_lets_mail_go_to_a_reader_again(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)

    code, output = run("subscribers", "unblock", "ANN@example.com")

    assert (code, output) == (
        0,
        "Unblocked ann@example.com: mail resumes to the lists they are still on "
        f"(was blocked: {DEAD}).",
    )
    assert stored_status(session, "ann@example.com") == SubscriberStatus.ACTIVE


def test_unblock_is_recorded_as_done_from_the_command_line(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)

    run("subscribers", "unblock", "ann@example.com")

    session.expire_all()
    record = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == ConsentAction.UNBLOCK)
    ).one()
    assert (record.source, record.created_at) == ("cli", now)


def test_unblock_of_an_unknown_address_is_a_one_line_error(session: Session) -> None:
    code, output = run("subscribers", "unblock", "nobody@example.com")

    assert (code, output) == (1, "error: no reader nobody@example.com")


def test_unblock_of_a_reader_who_is_not_blocked_is_a_one_line_error(
    session: Session, edition: Edition
) -> None:
    code, output = run("subscribers", "unblock", "ann@example.com")

    assert (code, output) == (1, "error: ann@example.com is not blocked")


def test_the_reader_list_says_why_a_reader_is_blocked(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    complaint(session, edition, "bob@example.com", settings=settings, now=now)

    code, output = run("subscribers", "list")

    assert code == 0
    assert "blocked: complained" in output
