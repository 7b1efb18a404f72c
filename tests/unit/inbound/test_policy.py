"""The bounce policy: what a bounce, complaint or email unsubscribe does to a reader."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.inbound.policy import Signal, apply, decayed_score, unblock
from newsletter.models import (
    ConsentAction,
    MailEventKind,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
)
from tests.unit.inbound.conftest import ANN, consent_log, lists_of, subscribed

CONFIRMED, UNSUBSCRIBED = SubscriptionStatus.CONFIRMED, SubscriptionStatus.UNSUBSCRIBED
USER_UNKNOWN = "550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown"


@pytest.fixture
def ann(
    session: Session, daily_list: NewsletterList, weekly_list: NewsletterList, now: datetime
) -> Subscriber:
    """A reader of both lists."""
    return subscribed(session, ANN, [daily_list, weekly_list], now=now)


def hard(subscriber_id: int | None, **overrides: object) -> Signal:
    values: dict[str, object] = {
        "kind": MailEventKind.BOUNCE, "category": "hard", "status": "5.1.1",
        "reason": "user_unknown", "diagnostic": USER_UNKNOWN, "subscriber_id": subscriber_id,
    }  # fmt: skip
    return Signal(**(values | overrides))  # type: ignore[arg-type]


def soft(subscriber_id: int, **overrides: object) -> Signal:
    values: dict[str, object] = {
        "kind": MailEventKind.BOUNCE, "category": "soft", "status": "4.2.2",
        "reason": "mailbox_full", "diagnostic": "452 4.2.2 Mailbox full",
        "subscriber_id": subscriber_id,
    }  # fmt: skip
    return Signal(**(values | overrides))  # type: ignore[arg-type]


def test_a_hard_bounce_blocks_the_reader_and_says_why(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    event = apply(session, hard(ann.id), source="smtp", settings=settings, now=now)

    assert event.outcome == "blocked"
    assert ann.status == SubscriberStatus.BLOCKED
    assert ann.blocked_at == now
    assert "5.1.1" in ann.blocked_reason
    assert "Recipient address rejected: User unknown" in ann.blocked_reason
    blocks = [row for row in consent_log(session, ann.id) if row.action == ConsentAction.BLOCK]
    assert [(row.list_id, row.detail) for row in blocks] == [(None, ann.blocked_reason)]


def test_a_bounce_for_a_reason_on_our_side_leaves_the_reader_active(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    refused = hard(
        ann.id, category="sender", status="5.7.1", reason="blocklisted",
        diagnostic="554 5.7.1 Client host blocked using zen.spamhaus.org",
    )  # fmt: skip

    event = apply(session, refused, source="smtp", settings=settings, now=now)

    assert event.outcome == "counted"
    assert event.domain == "example.com"
    assert ann.status == SubscriberStatus.ACTIVE
    assert ann.bounce_score == 0


def test_soft_bounces_count_at_most_once_a_day(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    first = apply(session, soft(ann.id), source="smtp", settings=settings, now=now)
    session.expire(ann)  # the day of the last score is read back from the database
    later = apply(
        session, soft(ann.id), source="smtp", settings=settings, now=now + timedelta(hours=3)
    )

    assert (first.outcome, later.outcome) == ("scored", "recorded")
    assert ann.bounce_score == settings.bounce_soft_score


def test_the_bounce_score_halves_over_the_half_life(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    apply(session, soft(ann.id), source="smtp", settings=settings, now=now)
    half_life = timedelta(days=settings.bounce_score_half_life_days)

    assert decayed_score(ann, settings, now + half_life) == pytest.approx(
        settings.bounce_soft_score / 2
    )


def test_soft_bounces_block_the_reader_when_the_score_reaches_the_threshold(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    strict = settings.model_copy(update={"bounce_score_threshold": 2.0})
    outcomes = [
        apply(
            session, soft(ann.id), source="smtp", settings=strict, now=now + timedelta(days=d)
        ).outcome
        for d in range(3)
    ]

    assert outcomes == ["scored", "scored", "blocked"]
    assert ann.status == SubscriberStatus.BLOCKED
    assert ann.blocked_reason.startswith("soft bounces, score 2.7")
    assert "Mailbox full" in ann.blocked_reason


def test_a_delayed_delivery_is_only_recorded(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    delayed = soft(ann.id, action="delayed", reason="delayed")

    event = apply(session, delayed, source="smtp", settings=settings, now=now)

    assert event.outcome == "recorded"
    assert ann.bounce_score == 0
    assert ann.status == SubscriberStatus.ACTIVE


def test_a_complaint_unsubscribes_the_reader_from_every_list_and_blocks_them(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    joined = consent_log(session, ann.id)
    complaint = Signal(MailEventKind.COMPLAINT, reason="abuse", subscriber_id=ann.id)

    event = apply(session, complaint, source="smtp", settings=settings, now=now)

    assert event.outcome == "suppressed"
    assert ann.status == SubscriberStatus.BLOCKED
    assert lists_of(session, ann.id) == {"daily": UNSUBSCRIBED, "weekly": UNSUBSCRIBED}
    withdrawn = consent_log(session, ann.id)[len(joined) :]
    assert sorted((row.action, row.list_id is None) for row in withdrawn) == [
        (ConsentAction.COMPLAINT, True),
        (ConsentAction.UNSUBSCRIBE, False),
        (ConsentAction.UNSUBSCRIBE, False),
    ]
    assert {row.source for row in withdrawn if row.action == ConsentAction.UNSUBSCRIBE} == {
        "complaint"
    }


def test_an_email_unsubscribe_naming_a_list_leaves_that_list_only(
    session: Session,
    ann: Subscriber,
    daily_list: NewsletterList,
    settings: Settings,
    now: datetime,
) -> None:
    request = Signal(MailEventKind.UNSUBSCRIBE, subscriber_id=ann.id, list_id=daily_list.id)

    event = apply(session, request, source="smtp", settings=settings, now=now)

    assert event.outcome == "unsubscribed"
    assert lists_of(session, ann.id) == {"daily": UNSUBSCRIBED, "weekly": CONFIRMED}
    assert ann.status == SubscriberStatus.ACTIVE
    log = consent_log(session, ann.id)
    unsubscribes = [r for r in log if r.action == ConsentAction.UNSUBSCRIBE]
    assert [(r.list_id, r.source) for r in unsubscribes] == [(daily_list.id, "email")]


def test_an_email_unsubscribe_naming_no_list_leaves_every_list(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    request = Signal(MailEventKind.UNSUBSCRIBE, subscriber_id=ann.id)

    apply(session, request, source="smtp", settings=settings, now=now)

    assert lists_of(session, ann.id) == {"daily": UNSUBSCRIBED, "weekly": UNSUBSCRIBED}


def test_an_unsubscribe_a_provider_reported_is_logged_with_the_providers_name(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    reported = Signal(MailEventKind.UNSUBSCRIBE, address=ANN, address_trusted=True)

    apply(session, reported, source="sendgrid", settings=settings, now=now)

    log = consent_log(session, ann.id)
    assert {r.source for r in log if r.action == ConsentAction.UNSUBSCRIBE} == {"sendgrid"}


def test_a_signal_naming_only_an_address_is_ignored(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    """Anyone can write a bounce for any address: an address alone blocks nobody."""
    forged = hard(None, address=ANN)

    event = apply(session, forged, source="smtp", settings=settings, now=now)

    assert event.outcome == "ignored"
    assert event.subscriber_id is None
    assert ann.status == SubscriberStatus.ACTIVE


def test_a_signal_whose_address_a_provider_authenticated_finds_the_reader(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    authenticated = hard(None, address="Ann@Example.com", address_trusted=True)

    event = apply(session, authenticated, source="ses", settings=settings, now=now)

    assert event.outcome == "blocked"
    assert event.subscriber_id == ann.id
    assert ann.status == SubscriberStatus.BLOCKED


def test_unblocking_restores_the_reader_and_clears_their_score(
    session: Session, ann: Subscriber, settings: Settings, now: datetime
) -> None:
    apply(session, soft(ann.id), source="smtp", settings=settings, now=now)
    apply(session, hard(ann.id), source="smtp", settings=settings, now=now)

    assert unblock(session, ann, who="cli", now=now + timedelta(days=1))

    assert ann.status == SubscriberStatus.ACTIVE
    assert (ann.bounce_score, ann.bounce_scored_at) == (0, None)
    assert (ann.blocked_at, ann.blocked_reason) == (None, "")
    last = consent_log(session, ann.id)[-1]
    assert (last.action, last.source) == (ConsentAction.UNBLOCK, "cli")
    assert last.detail.startswith("was blocked: hard bounce 5.1.1")
