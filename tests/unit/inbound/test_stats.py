"""What came back, counted: per edition, per list, per receiving domain, and the readers
blocked. Rows are made by sending an edition and applying what came back through the policy."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.inbound.stats import (
    ListRates,
    blocked_readers,
    edition_outcomes,
    list_rates,
    sender_refusals,
)
from newsletter.models import Edition, MailEventKind, NewsletterList
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import unsubscribe
from tests.factories import post
from tests.returns import (
    came_back,
    complaint,
    hard_bounce,
    reader_id,
    sender_refusal,
    sent_edition,
    soft_bounce,
)

READERS = ["ann@example.com", "bob@example.com", "cat@example.com", "dan@gmail.example"]


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    return sent_edition(session, daily_list, READERS, now=now, settings=settings)


def leave(session: Session, edition: Edition, email: str, source: str, at: datetime) -> None:
    unsubscribe(
        session, reader_id(session, email), edition.list_id, client=Client(source=source), now=at
    )
    session.commit()


# --- edition_outcomes -------------------------------------------------------------------------


def test_an_edition_accepted_for_every_reader_counts_them_all_delivered(
    session: Session, edition: Edition
) -> None:
    outcomes = edition_outcomes(session, edition.id)

    assert (outcomes.delivered, outcomes.bounced_hard, outcomes.complaints) == (4, 0, 0)


def test_bounces_count_readers_by_category_once_each(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)  # a second DSN
    soft_bounce(session, edition, "bob@example.com", settings=settings, now=now)

    outcomes = edition_outcomes(session, edition.id)

    assert (outcomes.bounced_hard, outcomes.bounced_soft) == (1, 1)


def test_a_delayed_delivery_report_is_not_a_bounce(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    came_back(
        session, edition, "bob@example.com", MailEventKind.BOUNCE, category="soft",
        action="delayed", status="4.4.7", settings=settings, now=now,
    )  # fmt: skip

    assert edition_outcomes(session, edition.id).bounced_soft == 0


def test_a_sender_side_refusal_is_counted_apart_from_the_readers_bounces(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    sender_refusal(session, edition, "dan@gmail.example", settings=settings, now=now)

    outcomes = edition_outcomes(session, edition.id)

    assert (outcomes.refused_sender, outcomes.bounced_hard, outcomes.bounced_soft) == (1, 0, 0)


def test_a_complaint_counts_as_a_complaint_not_as_an_unsubscribe(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    complaint(session, edition, "cat@example.com", settings=settings, now=now)

    outcomes = edition_outcomes(session, edition.id)

    assert (outcomes.complaints, outcomes.unsubscribed) == (1, 0)


def test_unsubscribes_after_the_send_count_by_how_the_reader_left(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    later = now + timedelta(hours=3)
    leave(session, edition, "ann@example.com", "page", later)
    leave(session, edition, "bob@example.com", "preferences", later)
    leave(session, edition, "cat@example.com", "one-click", later)
    came_back(
        session, edition, "dan@gmail.example", MailEventKind.UNSUBSCRIBE, settings=settings,
        now=later,
    )  # fmt: skip

    outcomes = edition_outcomes(session, edition.id)

    assert (
        outcomes.unsubscribed_link,
        outcomes.unsubscribed_one_click,
        outcomes.unsubscribed_email,
    ) == (2, 1, 1)


def test_an_unsubscribe_a_sending_provider_reported_counts_with_email(
    session: Session, edition: Edition, now: datetime
) -> None:
    leave(session, edition, "ann@example.com", "sendgrid", now + timedelta(hours=3))

    outcomes = edition_outcomes(session, edition.id)

    assert (outcomes.unsubscribed_email, outcomes.unsubscribed) == (1, 1)


def test_an_unsubscribe_before_the_send_started_is_not_the_editions(
    session: Session, edition: Edition, now: datetime
) -> None:
    leave(session, edition, "ann@example.com", "page", now - timedelta(minutes=1))

    assert edition_outcomes(session, edition.id).unsubscribed == 0


def test_an_unsubscribe_after_the_next_edition_went_out_counts_towards_the_next(
    session: Session,
    edition: Edition,
    daily_list: NewsletterList,
    settings: Settings,
    now: datetime,
) -> None:
    tomorrow = now + timedelta(days=1)
    upsert_posts(session, [post(10 + i, tomorrow - timedelta(hours=2)) for i in range(3)])
    following = sent_edition(session, daily_list, READERS, now=tomorrow, settings=settings)
    leave(session, edition, "ann@example.com", "one-click", tomorrow + timedelta(hours=1))

    assert edition_outcomes(session, edition.id).unsubscribed_one_click == 0
    assert edition_outcomes(session, following.id).unsubscribed_one_click == 1


# --- list_rates -------------------------------------------------------------------------------


def test_list_rates_are_shares_of_the_messages_delivered_in_the_window(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    soft_bounce(session, edition, "bob@example.com", settings=settings, now=now)
    complaint(session, edition, "cat@example.com", settings=settings, now=now)

    rates = list_rates(session, edition.list_id, now=now + timedelta(days=1))

    assert (rates.delivered, rates.hard_bounce_rate, rates.soft_bounce_rate) == (4, 0.25, 0.25)
    assert (rates.complaint_rate, rates.over_complaint_limit) == (0.25, True)


def test_list_rates_leave_out_what_is_older_than_the_window(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)

    rates = list_rates(session, edition.list_id, now=now + timedelta(days=31))

    assert (rates.delivered, rates.bounced_hard, rates.hard_bounce_rate) == (0, 0, 0.0)


def test_a_sender_side_refusal_is_not_in_the_lists_bounce_rate(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    sender_refusal(session, edition, "dan@gmail.example", settings=settings, now=now)

    rates = list_rates(session, edition.list_id, now=now)

    assert (rates.hard_bounce_rate, rates.soft_bounce_rate) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("complaints", "over"), [(2, False), (3, True)], ids=["0.2%", "0.3%"]
)  # fmt: skip
def test_the_complaint_limit_is_gmails_three_in_a_thousand(complaints: int, over: bool) -> None:
    rates = ListRates(
        list_id=1, days=30, delivered=1000, bounced_hard=0, bounced_soft=0, complaints=complaints
    )

    assert rates.over_complaint_limit is over


def test_a_list_that_sent_nothing_is_not_over_any_limit() -> None:
    rates = ListRates(list_id=1, days=30, delivered=0, bounced_hard=0, bounced_soft=0,
                      complaints=0)  # fmt: skip

    assert (rates.complaint_rate, rates.over_complaint_limit) == (0.0, False)


# --- sender_refusals --------------------------------------------------------------------------


def test_sender_refusals_are_counted_per_domain_with_the_latest_reason(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    sender_refusal(session, edition, "dan@gmail.example", settings=settings, now=now,
                   diagnostic="550 5.7.26 Unauthenticated email")  # fmt: skip
    sender_refusal(session, edition, "dan@gmail.example", settings=settings,
                   now=now + timedelta(hours=1), diagnostic="550 5.7.1 Our policy")  # fmt: skip
    sender_refusal(session, edition, "ann@example.com", settings=settings, now=now)

    refusals = sender_refusals(session, now=now + timedelta(hours=2))

    assert [(r.domain, r.count) for r in refusals] == [("gmail.example", 2), ("example.com", 1)]
    assert refusals[0].last_reason == "5.7.1 spam blocked: 550 5.7.1 Our policy"


def test_sender_refusals_leave_out_what_is_older_than_the_window(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    sender_refusal(session, edition, "dan@gmail.example", settings=settings, now=now)

    assert sender_refusals(session, now=now + timedelta(days=31)) == []


# --- blocked_readers --------------------------------------------------------------------------


def test_blocked_readers_show_why_newest_first_a_page_at_a_time(
    session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ann@example.com", settings=settings, now=now)
    complaint(session, edition, "cat@example.com", settings=settings,
              now=now + timedelta(hours=1))  # fmt: skip

    first = blocked_readers(session, page=1, per_page=1)
    second = blocked_readers(session, page=2, per_page=1)

    assert first.total == 2
    assert [(r.email, r.blocked_at) for r in first.readers] == [
        ("cat@example.com", now + timedelta(hours=1))
    ]
    assert first.readers[0].reason == "complained (marked a message as spam)"
    assert [r.email for r in second.readers] == ["ann@example.com"]
    assert second.readers[0].reason.startswith("hard bounce 5.1.1 user unknown")
