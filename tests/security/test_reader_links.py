"""A reader's links act on that reader only: after they erase their data, their old links act
on nobody, even on a database that could hand their id to the next reader.

Runs on both legs (SQLite by default, PostgreSQL with NEWSLETTER_TEST_DATABASE_URL).
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import NewsletterList, Subscriber, Subscription, SubscriptionStatus
from newsletter.subscriptions.tokens import PREFERENCES, UNSUBSCRIBE, make_token
from tests.factories import key_of
from tests.web.conftest import RecordingHandoff

A, B = "ann@example.com", "bea@example.com"


def sign_up(client: TestClient, email: str, lists: list[str]) -> None:
    response = client.post("/api/v1/subscriptions", json={"email": email, "lists": lists})
    assert response.status_code == 202, response.text


def subscriber_id(session: Session, email: str) -> int:
    session.expire_all()
    return session.scalars(select(Subscriber.id).where(Subscriber.email == email)).one()


def preferences_link(settings: Settings, session: Session, email: str, list_id: int) -> str:
    sid = subscriber_id(session, email)
    return f"/preferences/{make_token(settings.secret_key, PREFERENCES, sid, list_id, key_of(sid))}"


@pytest.fixture
def erased_link(
    client: TestClient, session: Session, settings: Settings, lists: list[NewsletterList],
    notifier: RecordingHandoff,
) -> str:  # fmt: skip
    """Reader A's preferences link, kept after A erased their data."""
    sign_up(client, A, ["daily"])
    link = preferences_link(settings, session, A, lists[0].id)
    erased = client.post(f"{link}/erase", data={"confirm": "yes"})
    assert erased.status_code == 200
    return link


def test_an_erased_readers_id_is_never_given_to_the_next_reader(
    client: TestClient, session: Session, settings: Settings, lists: list[NewsletterList]
) -> None:
    sign_up(client, A, ["daily"])
    first = subscriber_id(session, A)
    link = preferences_link(settings, session, A, lists[0].id)
    client.post(f"{link}/erase", data={"confirm": "yes"})

    sign_up(client, B, ["daily"])

    assert subscriber_id(session, B) > first


def test_an_erased_readers_link_does_not_show_the_next_reader(
    client: TestClient, session: Session, erased_link: str
) -> None:
    sign_up(client, B, ["daily"])

    page = client.get(erased_link)

    assert page.status_code in (400, 404)
    assert B not in page.text


def test_an_erased_readers_link_does_not_download_the_next_readers_data(
    client: TestClient, session: Session, erased_link: str
) -> None:
    sign_up(client, B, ["daily"])

    response = client.get(f"{erased_link}/data.json")

    assert response.status_code in (400, 404)
    assert B not in response.text


def test_an_erased_readers_link_does_not_confirm_the_next_reader(
    client: TestClient, session: Session, erased_link: str, lists: list[NewsletterList]
) -> None:
    sign_up(client, B, ["daily"])

    client.post(erased_link, data={"lists": [nl.slug for nl in lists], "frequency": "daily"})

    session.expire_all()
    statuses = session.scalars(
        select(Subscription.status).join(Subscriber).where(Subscriber.email == B)
    ).all()
    assert statuses == [SubscriptionStatus.PENDING], "B confirms from their own email only"


def link_for_someone_else(settings: Settings, session: Session, purpose: str, list_id: int) -> str:
    """A link signed for reader B's id with another reader's key: what A's old link is if a
    database (a restore, a copy) ever hands A's id to B."""
    sid = subscriber_id(session, B)
    return make_token(settings.secret_key, purpose, sid, list_id, "the-erased-readers-key")


def test_a_link_with_another_readers_key_is_refused_even_under_the_same_id(
    client: TestClient, session: Session, settings: Settings, lists: list[NewsletterList]
) -> None:
    sign_up(client, B, ["daily"])
    token = link_for_someone_else(settings, session, PREFERENCES, lists[0].id)

    page = client.get(f"/preferences/{token}")

    assert page.status_code == 400
    assert "no longer works" in page.text
    assert B not in page.text


def test_a_one_click_unsubscribe_with_another_readers_key_unsubscribes_nobody(
    client: TestClient, session: Session, settings: Settings, lists: list[NewsletterList]
) -> None:
    sign_up(client, B, ["daily"])
    token = link_for_someone_else(settings, session, UNSUBSCRIBE, lists[0].id)

    response = client.post(
        f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )  # fmt: skip

    assert response.status_code == 400
    session.expire_all()
    assert session.scalars(select(Subscription.status)).all() == [SubscriptionStatus.PENDING]


def test_links_made_before_keys_keep_working_for_readers_from_before(
    client: TestClient, session: Session, settings: Settings, lists: list[NewsletterList]
) -> None:
    sign_up(client, A, ["daily"])
    sid = subscriber_id(session, A)
    # A reader stored before the upgrade has no key, and their old emails' links carry none.
    session.execute(Subscriber.__table__.update().values(token_key=""))
    session.commit()
    old_link = make_token(settings.secret_key, PREFERENCES, sid, lists[0].id, "")

    page = client.get(f"/preferences/{old_link}")

    assert page.status_code == 200
    assert A in page.text
    assert re.search(r"Your preferences|preferences", page.text)
