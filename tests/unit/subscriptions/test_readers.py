"""What readers do for themselves, at the domain level: sign up, confirm, change preferences,
leave, download and erase their data; and the purge of signups never confirmed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.lifecycle import start_sending
from newsletter.lists.service import ListError, ListSpec, create_list, lists_by_slug
from newsletter.models import (
    ClickTracking,
    ConsentAction,
    ConsentEvent,
    Delivery,
    Edition,
    EngagedMessage,
    Frequency,
    InboundMessage,
    MailEvent,
    MailEventKind,
    NewsletterList,
    ReaderClick,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    TrackedLink,
)
from newsletter.subscriptions import readers
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import Preferences
from tests.factories import edition_with_readers
from tests.moments import TEST_NOW

EMAIL = "ada@example.com"
WORDING = "We will email you a link to confirm."
WHO = Client(source="form", ip="192.0.2.10", user_agent="pytest-browser/1.0")


@pytest.fixture
def tech_list(session: Session) -> NewsletterList:
    nl = create_list(
        session,
        ListSpec(slug="tech", name="Shortlysts Tech", from_address="tech@shortlysts.example.com"),
    )
    session.commit()
    return nl


def sign_up(
    session: Session,
    lists: list[NewsletterList],
    now: datetime,
    email: str = EMAIL,
    frequency: Frequency = Frequency.DAILY,
) -> readers.SignupResult:
    result = readers.request_signup(
        session, email=email, name=" Ada ", lists=lists, frequency=frequency, client=WHO,
        wording=WORDING, now=now,
    )  # fmt: skip
    session.commit()
    return result


def subscription(session: Session, nl: NewsletterList, email: str = EMAIL) -> Subscription:
    session.expire_all()
    return session.scalars(
        select(Subscription)
        .join(Subscriber)
        .where(Subscriber.email == email, Subscription.list_id == nl.id)
    ).one()


def actions(session: Session) -> list[ConsentAction]:
    session.expire_all()
    return list(session.scalars(select(ConsentEvent.action).order_by(ConsentEvent.id)))


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# --- lists_by_slug -------------------------------------------------------------------------


def test_lists_by_slug_keeps_order_and_drops_repeats(
    session: Session, daily_list: NewsletterList, tech_list: NewsletterList
) -> None:
    found = lists_by_slug(session, ["tech", "daily", "tech"])

    assert [nl.slug for nl in found] == ["tech", "daily"]


@pytest.mark.parametrize(
    ("slugs", "message"), [([], "at least one"), (["daily", "nope"], "no such list: nope")]
)
def test_lists_by_slug_refuses_unknown_or_none(
    session: Session, daily_list: NewsletterList, slugs: list[str], message: str
) -> None:
    with pytest.raises(ListError, match=message):
        lists_by_slug(session, slugs)


# --- request_signup ------------------------------------------------------------------------


def test_signup_is_pending_with_its_consent_recorded(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list], now, frequency=Frequency.WEEKLY)

    assert result.pending_list_ids == [daily_list.id]
    row = subscription(session, daily_list)
    assert (row.status, row.frequency, row.source) == (
        SubscriptionStatus.PENDING,
        Frequency.WEEKLY,
        "form",
    )
    assert row.created_at == now
    assert row.confirmed_at is None
    subscriber = session.get(Subscriber, result.subscriber_id)
    assert subscriber is not None
    assert subscriber.name == "Ada"
    event = session.scalars(select(ConsentEvent)).one()
    assert (event.action, event.email, event.list_id, event.subscriber_id) == (
        ConsentAction.SIGNUP,
        EMAIL,
        daily_list.id,
        result.subscriber_id,
    )
    assert (event.ip, event.user_agent, event.wording) == (WHO.ip, WHO.user_agent, WORDING)
    assert event.detail == "frequency=weekly"
    assert event.created_at == now


def test_signup_normalises_the_address_and_finds_it_in_any_case(
    session: Session, daily_list: NewsletterList, tech_list: NewsletterList, now: datetime
) -> None:
    first = sign_up(session, [daily_list], now, email="Ada@EXAMPLE.com")
    second = sign_up(session, [tech_list], now, email="ADA@example.com")

    assert first.subscriber_id == second.subscriber_id
    assert session.scalars(select(Subscriber.email)).all() == ["Ada@example.com"]


def test_signing_up_twice_with_an_accented_capital_finds_the_same_reader(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    first = sign_up(session, [daily_list], now, email="ÉLODIE@example.com")
    second = sign_up(session, [daily_list], now, email="ÉLODIE@example.com")

    assert first.subscriber_id == second.subscriber_id


def test_signup_of_a_blocked_address_queues_nothing(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    session.add(Subscriber(email=EMAIL, status=SubscriberStatus.BLOCKED))
    session.commit()

    result = sign_up(session, [daily_list], now)

    assert result.pending_list_ids == []


def test_signup_of_a_confirmed_reader_changes_nothing(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list], now)
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    session.commit()

    again = sign_up(session, [daily_list], now + timedelta(days=1), frequency=Frequency.WEEKLY)

    assert again.pending_list_ids == []
    row = subscription(session, daily_list)
    assert row.status == SubscriptionStatus.CONFIRMED
    assert row.frequency == Frequency.DAILY
    assert actions(session) == [ConsentAction.SIGNUP, ConsentAction.CONFIRM]


def test_signup_for_a_new_list_leaves_the_confirmed_one_alone(
    session: Session, daily_list: NewsletterList, tech_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list], now)
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    session.commit()

    again = sign_up(session, [daily_list, tech_list], now)

    assert again.pending_list_ids == [tech_list.id]
    assert subscription(session, daily_list).status == SubscriptionStatus.CONFIRMED
    assert subscription(session, tech_list).status == SubscriptionStatus.PENDING


def test_signup_after_unsubscribing_is_pending_again(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list], now)
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    readers.unsubscribe(session, result.subscriber_id, daily_list.id, client=WHO, now=now)
    session.commit()
    later = now + timedelta(days=30)

    again = sign_up(session, [daily_list], later)

    assert again.pending_list_ids == [daily_list.id]
    row = subscription(session, daily_list)
    assert row.status == SubscriptionStatus.PENDING
    assert row.created_at == later  # the purge clock starts again
    assert actions(session)[-1] == ConsentAction.SIGNUP


def test_repeated_pending_signup_stays_one_row(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    sign_up(session, [daily_list], now)
    again = sign_up(session, [daily_list], now + timedelta(hours=1))

    assert again.pending_list_ids == [daily_list.id]
    assert count(session, Subscriber) == 1
    assert count(session, Subscription) == 1
    assert actions(session) == [ConsentAction.SIGNUP, ConsentAction.SIGNUP]


# --- confirm ---------------------------------------------------------------------------------


def test_confirm_confirms_pending_lists(
    session: Session, daily_list: NewsletterList, tech_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list, tech_list], now)
    later = now + timedelta(minutes=5)

    confirmed = readers.confirm(
        session, result.subscriber_id, [daily_list.id, tech_list.id], client=WHO, now=later
    )
    session.commit()

    assert confirmed is not None
    assert {nl.slug for nl in confirmed.newly_confirmed} == {"daily", "tech"}
    assert confirmed.already_confirmed == []
    row = subscription(session, daily_list)
    assert (row.status, row.confirmed_at) == (SubscriptionStatus.CONFIRMED, later)
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == ConsentAction.CONFIRM)
    ).all()
    assert len(events) == 2
    assert all(e.wording == "Confirm my subscription" and e.email == EMAIL for e in events)


def test_confirm_is_idempotent(session: Session, daily_list: NewsletterList, now: datetime) -> None:
    result = sign_up(session, [daily_list], now)
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    session.commit()

    again = readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    session.commit()

    assert again is not None
    assert again.newly_confirmed == []
    assert [nl.id for nl in again.already_confirmed] == [daily_list.id]
    assert actions(session).count(ConsentAction.CONFIRM) == 1


def test_confirm_replayed_after_unsubscribing_does_nothing(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list], now)
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    readers.unsubscribe(session, result.subscriber_id, daily_list.id, client=WHO, now=now)
    session.commit()

    replay = readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    session.commit()

    assert replay is not None
    assert (replay.newly_confirmed, replay.already_confirmed) == ([], [])
    assert subscription(session, daily_list).status == SubscriptionStatus.UNSUBSCRIBED
    assert actions(session).count(ConsentAction.CONFIRM) == 1


def test_confirm_touches_only_the_lists_named(
    session: Session, daily_list: NewsletterList, tech_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list, tech_list], now)

    readers.confirm(session, result.subscriber_id, [tech_list.id], client=WHO, now=now)
    session.commit()

    assert subscription(session, daily_list).status == SubscriptionStatus.PENDING
    assert subscription(session, tech_list).status == SubscriptionStatus.CONFIRMED


def test_confirm_by_a_reader_blocked_since_they_signed_up_confirms_nothing(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list], now)
    blocked = session.get(Subscriber, result.subscriber_id)
    assert blocked is not None
    blocked.status = SubscriberStatus.BLOCKED  # the confirmation request bounced hard
    session.commit()

    confirmed = readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO,
                                now=now)  # fmt: skip
    session.commit()

    assert confirmed is not None
    assert confirmed.newly_confirmed == []
    assert subscription(session, daily_list).status == SubscriptionStatus.PENDING
    assert ConsentAction.CONFIRM not in actions(session)


def test_confirm_for_a_reader_who_is_gone(session: Session, daily_list: NewsletterList) -> None:
    assert readers.confirm(session, 123_456, [daily_list.id], client=WHO, now=_now()) is None


def _now() -> datetime:
    return datetime.now(UTC)


# --- unsubscribe -----------------------------------------------------------------------------


def test_unsubscribe_is_immediate_and_idempotent(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list], now)
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)

    first = readers.unsubscribe(session, result.subscriber_id, daily_list.id, client=WHO, now=now)
    second = readers.unsubscribe(session, result.subscriber_id, daily_list.id, client=WHO, now=now)
    session.commit()

    assert first is not None
    assert second is not None
    assert first.id == second.id == daily_list.id
    row = subscription(session, daily_list)
    assert (row.status, row.unsubscribed_at) == (SubscriptionStatus.UNSUBSCRIBED, now)
    assert actions(session).count(ConsentAction.UNSUBSCRIBE) == 1


def test_unsubscribe_unknown_reader_is_none(session: Session, daily_list: NewsletterList) -> None:
    assert readers.unsubscribe(session, 99, daily_list.id, client=WHO, now=_now()) is None
    assert actions(session) == []


def test_unsubscribe_all(
    session: Session, daily_list: NewsletterList, tech_list: NewsletterList, now: datetime
) -> None:
    result = sign_up(session, [daily_list, tech_list], now)

    readers.unsubscribe_all(session, result.subscriber_id, client=WHO, now=now)
    session.commit()

    assert subscription(session, daily_list).status == SubscriptionStatus.UNSUBSCRIBED
    assert subscription(session, tech_list).status == SubscriptionStatus.UNSUBSCRIBED
    assert actions(session).count(ConsentAction.UNSUBSCRIBE) == 2


# --- update_preferences ----------------------------------------------------------------------


@pytest.fixture
def confirmed(session: Session, daily_list: NewsletterList, now: datetime) -> int:
    result = sign_up(session, [daily_list], now)
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    session.commit()
    return result.subscriber_id


def test_preferences_add_and_remove_lists_and_set_frequency(
    session: Session,
    confirmed: int,
    daily_list: NewsletterList,
    tech_list: NewsletterList,
    now: datetime,
) -> None:
    readers.update_preferences(
        session, confirmed, Preferences(frozenset({tech_list.id}), Frequency.WEEKLY, False),
        client=WHO, now=now,
    )  # fmt: skip
    session.commit()

    daily, tech = subscription(session, daily_list), subscription(session, tech_list)
    assert (daily.status, daily.unsubscribed_at) == (SubscriptionStatus.UNSUBSCRIBED, now)
    assert (tech.status, tech.frequency, tech.confirmed_at) == (
        SubscriptionStatus.CONFIRMED,
        Frequency.WEEKLY,
        now,
    )
    event = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == ConsentAction.PREFERENCES)
    ).one()
    assert event.detail == f"lists=[{tech_list.id}] frequency=weekly paused=False"
    assert event.list_id is None


def test_preferences_rejoin_a_list_left_before(
    session: Session, confirmed: int, daily_list: NewsletterList, now: datetime
) -> None:
    readers.unsubscribe(session, confirmed, daily_list.id, client=WHO, now=now)
    later = now + timedelta(days=1)

    readers.update_preferences(
        session, confirmed, Preferences(frozenset({daily_list.id}), Frequency.DAILY, False),
        client=WHO, now=later,
    )  # fmt: skip
    session.commit()

    row = subscription(session, daily_list)
    assert (row.status, row.confirmed_at, row.unsubscribed_at) == (
        SubscriptionStatus.CONFIRMED,
        later,
        None,
    )


def test_preferences_pause_and_resume(
    session: Session, confirmed: int, daily_list: NewsletterList, now: datetime
) -> None:
    wanted = frozenset({daily_list.id})
    readers.update_preferences(
        session, confirmed, Preferences(wanted, Frequency.DAILY, True), client=WHO, now=now
    )
    later = now + timedelta(days=1)
    readers.update_preferences(
        session, confirmed, Preferences(wanted, Frequency.DAILY, True), client=WHO, now=later
    )
    session.commit()
    assert subscription(session, daily_list).paused_at == now  # the first pause is kept

    readers.update_preferences(
        session, confirmed, Preferences(wanted, Frequency.DAILY, False), client=WHO, now=later
    )
    session.commit()
    assert subscription(session, daily_list).paused_at is None
    assert subscription(session, daily_list).status == SubscriptionStatus.CONFIRMED


def test_preferences_refuse_an_unknown_list(
    session: Session, confirmed: int, daily_list: NewsletterList, now: datetime
) -> None:
    wanted = Preferences(frozenset({daily_list.id, 999}), Frequency.DAILY, False)
    with pytest.raises(readers.UnknownList):
        readers.update_preferences(session, confirmed, wanted, client=WHO, now=now)
    session.rollback()

    assert subscription(session, daily_list).status == SubscriptionStatus.CONFIRMED
    assert ConsentAction.PREFERENCES not in actions(session)


def test_preferences_of_a_reader_who_is_gone_write_nothing(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    readers.update_preferences(
        session, 4242, Preferences(frozenset({daily_list.id}), Frequency.DAILY, False),
        client=WHO, now=now,
    )  # fmt: skip
    session.commit()

    assert count(session, Subscription) == 0
    assert count(session, ConsentEvent) == 0


# --- export_data and erase -------------------------------------------------------------------


def test_export_data_holds_everything_about_the_reader(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = edition_with_readers(session, daily_list, [EMAIL], now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    subscriber_id = session.scalars(select(Subscriber.id)).one()

    data = readers.export_data(session, subscriber_id)

    assert data is not None
    assert data["email"] == EMAIL
    assert data["status"] == "active"
    [sub] = data["subscriptions"]
    assert (sub["list"], sub["status"], sub["frequency"], sub["paused"]) == (
        "daily",
        "confirmed",
        "daily",
        False,
    )
    assert [e["action"] for e in data["consent_log"]] == ["import"]  # added by an operator
    [delivery] = data["deliveries"]
    assert (delivery["list"], delivery["edition_date"], delivery["status"]) == (
        "daily",
        now.date().isoformat(),
        "queued",
    )


def test_export_data_includes_the_consent_log(
    session: Session, confirmed: int, daily_list: NewsletterList, now: datetime
) -> None:
    data = readers.export_data(session, confirmed)

    assert data is not None
    assert [e["action"] for e in data["consent_log"]] == ["signup", "confirm"]
    assert data["consent_log"][0] == {
        "action": "signup",
        "list_id": daily_list.id,
        "source": "form",
        "ip": WHO.ip,
        "user_agent": WHO.user_agent,
        "wording": WORDING,
        "detail": "frequency=daily",
        "at": now.isoformat(),
    }


def test_export_data_for_nobody(session: Session) -> None:
    assert readers.export_data(session, 1) is None


def test_erase_deletes_the_reader_and_anonymises_the_consent_log(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition = edition_with_readers(session, daily_list, ["other@example.com"], now=now,
                                   settings=settings)  # fmt: skip
    result = sign_up(session, [daily_list], now, email="Ada@Example.com")
    readers.confirm(session, result.subscriber_id, [daily_list.id], client=WHO, now=now)
    session.commit()
    start_sending(session, edition.id, now=now)
    session.commit()
    assert count(session, Delivery) == 2

    erased = readers.erase(session, result.subscriber_id, client=WHO, now=now)
    session.commit()

    assert erased is True
    session.expire_all()
    assert session.scalars(select(Subscriber.email)).all() == ["other@example.com"]
    assert count(session, Subscription) == 1
    assert count(session, Delivery) == 1
    digest = "sha256:" + hashlib.sha256(b"ada@example.com").hexdigest()
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.action != ConsentAction.IMPORT)  # the other reader's
        .order_by(ConsentEvent.id)
    ).all()
    assert [e.action for e in events] == [
        ConsentAction.SIGNUP,
        ConsentAction.CONFIRM,
        ConsentAction.ERASE,
    ]
    for event in events:
        assert (event.email, event.subscriber_id, event.ip, event.user_agent) == (
            digest,
            None,
            "",
            "",
        )
    assert events[0].list_id == daily_list.id  # what was consented to is still known
    assert readers.export_data(session, result.subscriber_id) is None


def came_back(session: Session, raw: bytes, event: MailEvent, *, sender: str = "") -> int:
    """A returned message, stored, and what it said: the event's id."""
    message = InboundMessage(
        source="smtp", envelope_from=sender, raw=raw, size=len(raw), received_at=TEST_NOW
    )
    session.add(message)
    session.flush()
    event.inbound_message_id = message.id
    event.created_at = TEST_NOW
    session.add(event)
    session.commit()
    return event.id


def test_erase_forgets_the_mail_that_came_back_for_the_reader(
    session: Session, confirmed: int, now: datetime
) -> None:
    bounce = came_back(session, b"Final-Recipient: rfc822; ada@example.com\r\n", MailEvent(
        kind=MailEventKind.BOUNCE, subscriber_id=confirmed, category="soft", address=EMAIL,
        domain="example.com", diagnostic="452 4.2.2 <ada@example.com>: mailbox full",
    ))  # fmt: skip
    # A request nobody could verify names the reader by address only, in any case.
    request = came_back(session, b"From: ADA@example.com\r\n\r\nunsubscribe", MailEvent(
        kind=MailEventKind.UNSUBSCRIBE, address="ADA@example.com", outcome="ignored",
    ), sender="ADA@example.com")  # fmt: skip

    assert readers.erase(session, confirmed, client=WHO, now=now) is True
    session.commit()

    session.expire_all()
    rows = session.execute(
        select(MailEvent, InboundMessage)
        .join(InboundMessage, InboundMessage.id == MailEvent.inbound_message_id)
        .where(MailEvent.id.in_([bounce, request]))
        .order_by(MailEvent.id)
    ).all()
    assert [(e.address, e.diagnostic, m.raw, m.envelope_from) for e, m in rows] == [
        ("", "", None, ""),
        ("", "", None, ""),
    ]
    # What it counts towards stays: a soft bounce at example.com.
    assert (rows[0][0].kind, rows[0][0].category, rows[0][0].domain) == (
        MailEventKind.BOUNCE, "soft", "example.com",
    )  # fmt: skip


def test_erase_leaves_mail_that_came_back_for_other_readers(
    session: Session, confirmed: int, now: datetime
) -> None:
    raw = b"Final-Recipient: rfc822; bob@example.com\r\n"
    other = came_back(session, raw, MailEvent(
        kind=MailEventKind.BOUNCE, address="bob@example.com", diagnostic="550 5.1.1 unknown",
    ), sender="mailer-daemon@example.com")  # fmt: skip

    readers.erase(session, confirmed, client=WHO, now=now)
    session.commit()

    session.expire_all()
    event = session.get(MailEvent, other)
    assert event is not None
    message = session.get(InboundMessage, event.inbound_message_id)
    assert message is not None
    assert (event.address, event.diagnostic, message.raw, message.envelope_from) == (
        "bob@example.com", "550 5.1.1 unknown", raw, "mailer-daemon@example.com",
    )  # fmt: skip


def test_erase_after_the_subscriptions_were_loaded(
    session: Session, confirmed: int, daily_list: NewsletterList, now: datetime
) -> None:
    """The ORM must not try to touch subscription rows it has already deleted."""
    subscriber = session.get(Subscriber, confirmed)
    assert subscriber is not None
    assert len(subscriber.subscriptions) == 1

    assert readers.erase(session, confirmed, client=WHO, now=now) is True
    session.commit()

    assert count(session, Subscriber) == 0
    assert count(session, Subscription) == 0


def test_erase_of_nobody(session: Session) -> None:
    assert readers.erase(session, 77, client=WHO, now=_now()) is False
    assert count(session, ConsentEvent) == 0


# --- a reader's own clicks (lists that track readers individually) --------------------------


def tracked_edition(
    session: Session, nl: NewsletterList, now: datetime, settings: Settings
) -> tuple[Edition, dict[str, int]]:
    """A sent edition of a list that stores each reader's clicks; its deliveries by address."""
    nl.click_tracking = ClickTracking.INDIVIDUAL
    edition = edition_with_readers(
        session, nl, [EMAIL, "bob@example.com"], now=now, settings=settings
    )
    start_sending(session, edition.id, now=now)
    session.commit()
    deliveries = dict(
        session.execute(
            select(Subscriber.email, Delivery.id).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    )
    return edition, deliveries


def clicked(
    session: Session, edition: Edition, subscriber_id: int, delivery_id: int, *,
    link: TrackedLink | None, at: datetime, machine: bool = False,
) -> None:  # fmt: skip
    """What the flush writes for a reader's click (``link``) or open (None)."""
    kind = "open" if link is None else "click"
    session.merge(EngagedMessage(
        edition_id=edition.id, kind=kind, ref=f"d{delivery_id}", subscriber_id=subscriber_id,
        created_at=at,
    ))  # fmt: skip
    session.add(ReaderClick(
        edition_id=edition.id, link_id=link.id if link else None, subscriber_id=subscriber_id,
        clicked_at=at, machine=machine, reason="scanner" if machine else "",
    ))  # fmt: skip
    session.commit()


def links_of(session: Session, edition: Edition) -> list[TrackedLink]:
    return list(
        session.scalars(
            select(TrackedLink)
            .where(TrackedLink.edition_id == edition.id)
            .order_by(TrackedLink.number)
        )
    )


def subscriber_id_of(session: Session, email: str) -> int:
    return session.scalars(select(Subscriber.id).where(Subscriber.email == email)).one()


def test_export_data_holds_the_readers_recorded_clicks_and_opens(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition, deliveries = tracked_edition(session, daily_list, now, settings)
    first, second = links_of(session, edition)[:2]
    ada, bob = subscriber_id_of(session, EMAIL), subscriber_id_of(session, "bob@example.com")
    later = now + timedelta(hours=1)
    clicked(session, edition, ada, deliveries[EMAIL], link=second, at=later)
    clicked(session, edition, ada, deliveries[EMAIL], link=None, at=now + timedelta(minutes=5))
    clicked(session, edition, ada, deliveries[EMAIL], link=first, at=later, machine=True)
    clicked(session, edition, bob, deliveries["bob@example.com"], link=first, at=later)

    data = readers.export_data(session, ada)

    assert data is not None
    assert data["clicks"]["recorded"] == 3
    assert data["clicks"]["lists_tracking_individually"] == ["daily"]
    day = now.date().isoformat()
    assert data["clicks"]["items"] == [
        {"list": "daily", "edition_date": day, "kind": "open", "url": None,
         "at": (now + timedelta(minutes=5)).isoformat(), "machine": False},
        {"list": "daily", "edition_date": day, "kind": "click", "url": second.url,
         "at": later.isoformat(), "machine": False},
        {"list": "daily", "edition_date": day, "kind": "click", "url": first.url,
         "at": later.isoformat(), "machine": True},
    ]  # fmt: skip


def test_export_data_of_a_reader_of_an_anonymous_list_has_no_clicks(
    session: Session, confirmed: int
) -> None:
    data = readers.export_data(session, confirmed)

    assert data is not None
    assert data["clicks"] == {"recorded": 0, "lists_tracking_individually": [], "items": []}


def test_erase_deletes_the_readers_clicks_and_detaches_the_messages_they_engaged_with(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    edition, deliveries = tracked_edition(session, daily_list, now, settings)
    link = links_of(session, edition)[0]
    ada, bob = subscriber_id_of(session, EMAIL), subscriber_id_of(session, "bob@example.com")
    clicked(session, edition, ada, deliveries[EMAIL], link=link, at=now)
    clicked(session, edition, ada, deliveries[EMAIL], link=None, at=now)
    clicked(session, edition, bob, deliveries["bob@example.com"], link=link, at=now)
    # A message the flush did not tie to its reader still names their delivery.
    session.merge(EngagedMessage(
        edition_id=edition.id, kind="open", ref=f"d{deliveries[EMAIL]}", subscriber_id=None,
        created_at=now,
    ))  # fmt: skip
    session.commit()

    assert readers.erase(session, ada, client=WHO, now=now) is True
    session.commit()

    session.expire_all()
    assert session.scalars(select(ReaderClick.subscriber_id)).all() == [bob]
    engaged = session.execute(
        select(EngagedMessage.kind, EngagedMessage.ref, EngagedMessage.subscriber_id).order_by(
            EngagedMessage.kind, EngagedMessage.ref
        )
    ).all()
    assert len(engaged) == 3  # each message still counts once
    theirs = [row for row in engaged if row.subscriber_id != bob]
    assert sorted(row.kind for row in theirs) == ["click", "open"]
    for row in theirs:
        assert row.subscriber_id is None
        assert row.ref.startswith("x")
        assert len(row.ref) > 8
    assert f"d{deliveries[EMAIL]}" not in {row.ref for row in engaged}
    assert (f"d{deliveries['bob@example.com']}", bob) in {
        (row.ref, row.subscriber_id) for row in engaged
    }
    assert session.get_one(TrackedLink, link.id).human_clicks == link.human_clicks


# --- purge_expired_signups -------------------------------------------------------------------


def test_purge_removes_stale_pending_signups_and_orphans_only(
    session: Session, daily_list: NewsletterList, tech_list: NewsletterList, now: datetime
) -> None:
    ttl = timedelta(days=7)
    old = now - ttl - timedelta(hours=1)
    stale = sign_up(session, [daily_list], old, email="stale@example.com")
    fresh = sign_up(session, [daily_list], now - timedelta(days=1), email="fresh@example.com")
    mixed = sign_up(session, [daily_list, tech_list], old, email="mixed@example.com")
    readers.confirm(session, mixed.subscriber_id, [daily_list.id], client=WHO, now=old)
    veteran = sign_up(session, [daily_list], now - timedelta(days=400), email="vet@example.com")
    readers.confirm(session, veteran.subscriber_id, [daily_list.id], client=WHO, now=old)
    left = sign_up(session, [daily_list], old, email="left@example.com")
    readers.confirm(session, left.subscriber_id, [daily_list.id], client=WHO, now=old)
    readers.unsubscribe(session, left.subscriber_id, daily_list.id, client=WHO, now=old)
    session.commit()

    removed = readers.purge_expired_signups(session, now=now, ttl=ttl)
    session.commit()

    assert removed == 2  # stale's daily and mixed's tech
    session.expire_all()
    assert sorted(session.scalars(select(Subscriber.email))) == [
        "fresh@example.com",
        "left@example.com",
        "mixed@example.com",
        "vet@example.com",
    ]
    assert subscription(session, daily_list, "fresh@example.com").status == (
        SubscriptionStatus.PENDING
    )
    assert subscription(session, daily_list, "mixed@example.com").status == (
        SubscriptionStatus.CONFIRMED
    )
    assert session.scalars(
        select(Subscription).where(Subscription.subscriber_id == mixed.subscriber_id)
    ).all() == [subscription(session, daily_list, "mixed@example.com")]
    assert subscription(session, daily_list, "vet@example.com").status == (
        SubscriptionStatus.CONFIRMED
    )
    assert session.get(Subscriber, stale.subscriber_id) is None
    assert fresh.subscriber_id in set(session.scalars(select(Subscriber.id)))


def test_purge_keeps_a_reader_with_deliveries(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> None:
    """A reader with a delivery history but no subscription row is not an orphan."""
    edition = edition_with_readers(session, daily_list, [EMAIL], now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    session.execute(Subscription.__table__.delete())
    session.commit()

    readers.purge_expired_signups(session, now=now, ttl=timedelta(days=7))
    session.commit()

    assert count(session, Subscriber) == 1


def test_purge_with_nothing_to_do(session: Session, now: datetime) -> None:
    assert readers.purge_expired_signups(session, now=now, ttl=timedelta(days=7)) == 0
