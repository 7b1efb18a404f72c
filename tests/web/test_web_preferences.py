"""The preferences page: lists, frequency, pause, leaving everything, and the reader's data
(download and erasure)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.lifecycle import start_sending
from newsletter.models import (
    ClickTracking,
    ConsentAction,
    ConsentEvent,
    Delivery,
    Frequency,
    NewsletterList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions.tokens import PREFERENCES, make_confirm_token, make_token
from tests.factories import edition_with_readers, key_of
from tests.moments import TEST_NOW
from tests.web.conftest import error_paragraph, visible_text

EMAIL = "ada@example.com"


def subscriptions(session: Session) -> dict[str, Subscription]:
    """The reader's subscriptions by list slug, as committed."""
    session.expire_all()
    rows = session.scalars(
        select(Subscription).join(Subscriber).where(Subscriber.email == EMAIL)
    ).all()
    return {s.newsletter_list.slug: s for s in rows}


def consent_actions(session: Session) -> list[ConsentAction]:
    session.expire_all()
    return list(session.scalars(select(ConsentEvent.action).order_by(ConsentEvent.id)))


@pytest.fixture
def reader(
    client: TestClient, session: Session, settings: Settings, lists: list[NewsletterList]
) -> str:
    """A reader who signed up for the daily list and confirmed; returns their preferences path."""
    response = client.post(
        "/api/v1/subscriptions", json={"email": EMAIL, "name": "Ada", "lists": ["daily"]}
    )
    assert response.status_code == 202
    subscriber = session.scalars(select(Subscriber)).one()
    confirmed = client.post(f"/confirm/{_confirm_token(settings, subscriber.id, lists[0].id)}")
    assert confirmed.status_code == 200
    link = re.search(r'href="(/preferences/[^"]+)"', confirmed.text)
    assert link
    return link.group(1)


def _confirm_token(settings: Settings, subscriber_id: int, list_id: int) -> str:
    return make_confirm_token(
        settings.secret_key, subscriber_id, [list_id], key_of(subscriber_id), now=TEST_NOW
    )


def test_preferences_page_shows_the_current_choices(client: TestClient, reader: str) -> None:
    response = client.get(reader)

    assert response.status_code == 200
    page = response.text
    assert f"For {EMAIL}" in visible_text(page)
    assert 'name="lists" value="daily" checked' in page
    assert 'name="lists" value="tech" >' in page
    assert 'name="frequency" value="daily" checked' in page
    assert 'name="paused" value="on" >' in page
    assert f'href="{reader}/data.json"' in page
    assert f'action="{reader}/erase"' in page
    assert f'action="{reader}/unsubscribe-all"' in page


def test_change_lists_and_frequency(
    client: TestClient, session: Session, reader: str, lists: list[NewsletterList]
) -> None:
    response = client.post(reader, data={"lists": ["daily", "tech"], "frequency": "weekly"})

    assert response.status_code == 200
    assert "Your preferences are saved." in visible_text(response.text)
    assert 'name="lists" value="tech" checked' in response.text
    assert 'name="frequency" value="weekly" checked' in response.text
    rows = subscriptions(session)
    assert {slug: (s.status, s.frequency) for slug, s in rows.items()} == {
        "daily": (SubscriptionStatus.CONFIRMED, Frequency.WEEKLY),
        "tech": (SubscriptionStatus.CONFIRMED, Frequency.WEEKLY),
    }
    assert rows["tech"].confirmed_at is not None
    event = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == ConsentAction.PREFERENCES)
    ).one()
    assert event.source == "preferences"
    assert "frequency=weekly" in event.detail
    assert "paused=False" in event.detail


def test_a_list_that_stores_each_readers_clicks_says_so_and_joining_it_records_that(
    client: TestClient, session: Session, reader: str, lists: list[NewsletterList]
) -> None:
    lists[1].click_tracking = ClickTracking.INDIVIDUAL
    session.commit()
    notice = (
        "Shortlysts Tech records which links you click in its emails, to learn what readers read."
    )

    page = client.get(reader).text
    client.post(reader, data={"lists": ["daily", "tech"], "frequency": "daily"})

    assert f"Shortlysts Tech Technology news, once a day. {notice}" in visible_text(page)
    assert visible_text(page).count("records which links you click") == 1
    event = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == ConsentAction.PREFERENCES)
    ).one()
    assert event.wording == f"Save my preferences {notice}"


def test_leaving_one_list_keeps_the_other(
    client: TestClient, session: Session, reader: str
) -> None:
    client.post(reader, data={"lists": ["daily", "tech"], "frequency": "daily"})

    response = client.post(reader, data={"lists": ["tech"], "frequency": "daily"})

    assert response.status_code == 200
    rows = subscriptions(session)
    assert rows["daily"].status == SubscriptionStatus.UNSUBSCRIBED
    assert rows["daily"].unsubscribed_at is not None
    assert rows["tech"].status == SubscriptionStatus.CONFIRMED
    assert 'name="lists" value="daily" >' in response.text


def test_pause_and_resume(client: TestClient, session: Session, reader: str) -> None:
    paused = client.post(reader, data={"lists": ["daily"], "frequency": "daily", "paused": "on"})

    assert paused.status_code == 200
    assert 'name="paused" value="on" checked' in paused.text
    assert subscriptions(session)["daily"].paused_at is not None
    assert subscriptions(session)["daily"].status == SubscriptionStatus.CONFIRMED

    resumed = client.post(reader, data={"lists": ["daily"], "frequency": "daily"})

    assert 'name="paused" value="on" >' in resumed.text
    assert subscriptions(session)["daily"].paused_at is None


def test_paused_reader_gets_no_delivery(
    client: TestClient,
    session: Session,
    settings: Settings,
    reader: str,
    lists: list[NewsletterList],
    now: datetime,
) -> None:
    edition = edition_with_readers(
        session, lists[0], ["other@example.com"], now=now, settings=settings
    )
    client.post(reader, data={"lists": ["daily"], "frequency": "daily", "paused": "on"})

    created = start_sending(session, edition.id, now=now)
    session.commit()

    assert created == 1
    recipients = session.scalars(
        select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
    ).all()
    assert recipients == ["other@example.com"]


@pytest.mark.parametrize("frequency", ["hourly", "DAILY", "daily\r\n"])
def test_unknown_frequency_is_refused(
    client: TestClient, session: Session, reader: str, frequency: str
) -> None:
    before = consent_actions(session)

    response = client.post(reader, data={"lists": ["tech"], "frequency": frequency})

    assert response.status_code == 400
    assert "Choose daily or weekly." in error_paragraph(response.text)
    assert set(subscriptions(session)) == {"daily"}
    assert consent_actions(session) == before


def test_unknown_list_is_refused(client: TestClient, session: Session, reader: str) -> None:
    before = consent_actions(session)

    response = client.post(reader, data={"lists": ["daily", "ghost"], "frequency": "weekly"})

    assert response.status_code == 400
    assert "no such list: ghost" in error_paragraph(response.text)
    assert subscriptions(session)["daily"].frequency == Frequency.DAILY
    assert consent_actions(session) == before


def test_unsubscribe_from_everything(
    client: TestClient, session: Session, reader: str, lists: list[NewsletterList]
) -> None:
    client.post(reader, data={"lists": ["daily", "tech"], "frequency": "daily"})

    response = client.post(f"{reader}/unsubscribe-all")

    assert response.status_code == 200
    assert "You are unsubscribed from every list." in visible_text(response.text)
    assert "checked" not in re.sub(r'name="frequency"[^>]*', "", response.text)
    assert {s.status for s in subscriptions(session).values()} == {SubscriptionStatus.UNSUBSCRIBED}
    assert consent_actions(session).count(ConsentAction.UNSUBSCRIBE) == 2

    client.post(f"{reader}/unsubscribe-all")  # again: nothing more to record
    assert consent_actions(session).count(ConsentAction.UNSUBSCRIBE) == 2


def test_unsubscribe_from_everything_lands_on_a_page_of_its_own(
    client: TestClient, reader: str
) -> None:
    """Post, then redirect: the address bar is not the POST's, so a reload sends nothing."""
    response = client.post(f"{reader}/unsubscribe-all", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == f"{reader}?done=unsubscribed-all"


def test_the_preferences_page_says_only_what_it_knows_a_form_did(
    client: TestClient, reader: str
) -> None:
    page = client.get(f"{reader}?done=You+won+a+prize").text

    assert "prize" not in visible_text(page)
    assert 'role="status"' not in page


def test_download_my_data(client: TestClient, reader: str) -> None:
    response = client.get(f"{reader}/data.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "attachment" in response.headers["content-disposition"]
    data = response.json()
    assert data["email"] == EMAIL
    assert data["name"] == "Ada"
    assert [(s["list"], s["status"]) for s in data["subscriptions"]] == [("daily", "confirmed")]
    assert [e["action"] for e in data["consent_log"]] == ["signup", "confirm"]
    assert all(e["ip"] and e["user_agent"] and e["at"] for e in data["consent_log"])
    assert data["deliveries"] == []


def test_erase_my_data(client: TestClient, session: Session, reader: str) -> None:
    response = client.post(f"{reader}/erase", data={"confirm": "yes"})

    assert response.status_code == 200
    assert "Your data is deleted" in visible_text(response.text)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0
    kept = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
    assert [e.action for e in kept] == [
        ConsentAction.SIGNUP,
        ConsentAction.CONFIRM,
        ConsentAction.ERASE,
    ]
    digest = "sha256:" + hashlib.sha256(EMAIL.encode()).hexdigest()
    assert {e.email for e in kept} == {digest}
    assert all(e.subscriber_id is None and e.ip == "" and e.user_agent == "" for e in kept)
    assert client.get(reader).status_code == 404
    assert "We hold no data for this link" in visible_text(client.get(reader).text)
    assert client.get(f"{reader}/data.json").status_code == 404


def test_stale_preferences_form_after_erasure_writes_nothing(
    client: TestClient, session: Session, reader: str
) -> None:
    client.post(f"{reader}/erase", data={"confirm": "yes"})
    events_before = len(consent_actions(session))

    response = client.post(reader, data={"lists": ["daily"], "frequency": "daily"})

    assert response.status_code == 404
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0
    assert len(consent_actions(session)) == events_before


@pytest.mark.parametrize("confirm", [None, "", "no", "on"])
def test_erase_without_the_confirm_box_is_refused(
    client: TestClient, session: Session, reader: str, confirm: str | None
) -> None:
    before = consent_actions(session)

    response = client.post(f"{reader}/erase", data={} if confirm is None else {"confirm": confirm})

    assert response.status_code == 400
    assert "Tick the box" in error_paragraph(response.text)
    assert EMAIL in visible_text(response.text)
    assert subscriptions(session)["daily"].status == SubscriptionStatus.CONFIRMED
    assert consent_actions(session) == before


def test_preferences_token_of_one_reader_shows_only_that_reader(
    client: TestClient,
    session: Session,
    settings: Settings,
    reader: str,
    lists: list[NewsletterList],
) -> None:
    other = Subscriber(email="other@example.com")
    session.add(other)
    session.commit()
    token = make_token(settings.secret_key, PREFERENCES, other.id, lists[0].id, other.token_key)
    path = f"/preferences/{token}"

    page = client.get(path).text

    assert "other@example.com" in page
    assert EMAIL not in page
