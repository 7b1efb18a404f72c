"""Signing up through the form and the JSON API: double opt-in, no enumeration, spam traps
and rate limits."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import (
    ClickTracking,
    ConsentAction,
    ConsentEvent,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions.tokens import make_confirm_token
from newsletter.web.context import SIGNUP_WORDING
from tests.factories import key_of
from tests.moments import TEST_NOW
from tests.web.conftest import (
    NO_ROWS,
    USER_AGENT,
    AppFactory,
    RecordingNotifier,
    count_rows,
    error_paragraph,
    visible_text,
)

EMAIL = "reader@example.com"
CLICKS_STORED = (
    "Shortlysts Daily records which links you click in its emails, to learn what readers read."
)


def form(email: str = EMAIL, **extra: object) -> dict[str, object]:
    return {"email": email, "name": "Ada Reader", "lists": ["daily"], "frequency": "daily", **extra}


def api_body(email: str = EMAIL, **extra: object) -> dict[str, object]:
    return {"email": email, "name": "Ada Reader", "lists": ["daily"], **extra}


def confirm_directly(client: TestClient, notifier: RecordingNotifier) -> None:
    """Follow the confirmation link the last confirm notice would carry."""
    notice = notifier.of_kind("confirm")[-1]
    settings = client.app.state.web.settings  # type: ignore[attr-defined]
    token = make_confirm_token(
        settings.secret_key,
        notice.subscriber_id,
        notice.list_ids,
        key_of(notice.subscriber_id),
        now=TEST_NOW,
    )
    assert client.post(f"/confirm/{token}").status_code == 200


def test_form_lists_every_list(client: TestClient, lists: list[NewsletterList]) -> None:
    response = client.get("/subscribe")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page, text = response.text, visible_text(response.text)
    assert '<form method="post" action="/subscribe"' in page
    for nl in lists:
        assert f'value="{nl.slug}"' in page
        assert nl.name in text
        assert nl.description in text
    assert 'name="website"' in page  # the honeypot is there, hidden
    assert SIGNUP_WORDING in text


def test_form_preselects_the_list_named_in_the_link(
    client: TestClient, lists: list[NewsletterList]
) -> None:
    page = client.get("/subscribe", params={"list": "tech"}).text

    assert 'name="lists" value="tech" checked' in page
    assert 'name="lists" value="daily" checked' not in page
    assert "Subscribe to Shortlysts Tech" in page


def test_form_signup_is_pending_until_confirmed(
    client: TestClient, session: Session, lists: list[NewsletterList], notifier: RecordingNotifier
) -> None:
    response = client.post("/subscribe", data=form())

    assert response.status_code == 200
    assert "Check your inbox" in visible_text(response.text)
    subscriber = session.scalars(select(Subscriber)).one()
    assert subscriber.email == EMAIL
    assert subscriber.name == "Ada Reader"
    subscription = session.scalars(select(Subscription)).one()
    assert subscription.status == SubscriptionStatus.PENDING
    assert subscription.list_id == lists[0].id
    assert subscription.source == "form"
    event = session.scalars(select(ConsentEvent)).one()
    assert event.action == ConsentAction.SIGNUP
    assert event.email == EMAIL
    assert event.subscriber_id == subscriber.id
    assert event.list_id == lists[0].id
    assert event.ip == "testclient"
    assert event.user_agent == USER_AGENT
    assert event.wording == SIGNUP_WORDING
    assert event.source == "form"
    assert [(n.kind, n.subscriber_id, n.list_ids) for n in notifier.calls] == [
        ("confirm", subscriber.id, [lists[0].id])
    ]


def test_api_signup_is_accepted_and_pending(
    client: TestClient, session: Session, lists: list[NewsletterList], notifier: RecordingNotifier
) -> None:
    response = client.post(
        "/api/v1/subscriptions", json=api_body(lists=["daily", "tech"], frequency="weekly")
    )

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert "confirmation link" in body["message"]
    subscriptions = session.scalars(select(Subscription).order_by(Subscription.list_id)).all()
    assert [(s.list_id, s.status, s.frequency.value, s.source) for s in subscriptions] == [
        (lists[0].id, SubscriptionStatus.PENDING, "weekly", "api"),
        (lists[1].id, SubscriptionStatus.PENDING, "weekly", "api"),
    ]
    events = session.scalars(select(ConsentEvent)).all()
    assert {e.action for e in events} == {ConsentAction.SIGNUP}
    assert all(e.ip and e.user_agent == USER_AGENT and e.wording for e in events)
    assert len(notifier.calls) == 1
    assert notifier.calls[0].kind == "confirm"
    assert sorted(notifier.calls[0].list_ids) == [lists[0].id, lists[1].id]


@pytest.mark.parametrize("endpoint", ["form", "api"])
def test_confirmed_address_gets_the_same_answer_and_no_notice(
    client: TestClient,
    session: Session,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
    endpoint: str,
) -> None:
    def sign_up(email: str) -> tuple[int, str]:
        if endpoint == "form":
            response = client.post("/subscribe", data=form(email))
        else:
            response = client.post("/api/v1/subscriptions", json=api_body(email))
        return response.status_code, response.text

    sign_up(EMAIL)
    confirm_directly(client, notifier)
    rows_before, calls_before = count_rows(session), len(notifier.calls)

    known = sign_up(EMAIL)
    unknown = sign_up("stranger@example.com")

    assert known == unknown  # status and body identical: nothing tells the two apart
    assert len(notifier.calls) == calls_before + 1  # only the stranger is mailed
    assert notifier.calls[-1].kind == "confirm"
    assert notifier.calls[-1].subscriber_id != notifier.of_kind("welcome")[0].subscriber_id
    after = count_rows(session)
    assert after.subscribers == rows_before.subscribers + 1  # the stranger
    subscription = session.scalars(
        select(Subscription).join(Subscriber).where(Subscriber.email == EMAIL)
    ).one()
    assert subscription.status == SubscriptionStatus.CONFIRMED


def test_honeypot_on_the_form_looks_like_success_but_stores_nothing(
    client: TestClient, session: Session, lists: list[NewsletterList], notifier: RecordingNotifier
) -> None:
    genuine = client.post("/subscribe", data=form("real@example.com"))
    baseline = count_rows(session)

    bot = client.post("/subscribe", data=form("bot@example.com", website="http://spam.example"))

    assert bot.status_code == 200
    assert bot.text == genuine.text
    assert count_rows(session) == baseline
    assert session.scalar(select(Subscriber).where(Subscriber.email == "bot@example.com")) is None
    assert len(notifier.calls) == 1  # the genuine signup only


def test_honeypot_on_the_api_looks_like_success_but_stores_nothing(
    client: TestClient, session: Session, lists: list[NewsletterList], notifier: RecordingNotifier
) -> None:
    response = client.post("/api/v1/subscriptions", json=api_body(website="http://spam.example"))

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert count_rows(session) == NO_ROWS
    assert notifier.calls == []


def test_per_ip_limit_on_the_form(
    make_client: AppFactory,
    session: Session,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
) -> None:
    client = make_client(signup_rate_limit_per_ip="3/minute")
    for number in range(3):
        assert client.post("/subscribe", data=form(f"r{number}@example.com")).status_code == 200
    before = count_rows(session)

    response = client.post("/subscribe", data=form("r4@example.com"))

    assert response.status_code == 429
    assert "Please slow down" in response.text
    assert "Too many signups from your network" in error_paragraph(response.text)
    assert count_rows(session) == before
    assert len(notifier.calls) == 3


def test_per_ip_limit_on_the_api(
    make_client: AppFactory,
    session: Session,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
) -> None:
    client = make_client(signup_rate_limit_per_ip="3/minute")
    for number in range(3):
        response = client.post("/api/v1/subscriptions", json=api_body(f"r{number}@example.com"))
        assert response.status_code == 202
    before = count_rows(session)

    response = client.post("/api/v1/subscriptions", json=api_body("r4@example.com"))

    assert response.status_code == 429
    assert "Too many signups" in response.json()["detail"]
    assert response.headers["retry-after"] == "60"
    assert count_rows(session) == before
    assert len(notifier.calls) == 3


def test_per_ip_limit_counts_bots_too(
    make_client: AppFactory, session: Session, lists: list[NewsletterList]
) -> None:
    client = make_client(signup_rate_limit_per_ip="3/minute")
    for _ in range(3):
        client.post("/subscribe", data=form(website="spam"))

    response = client.post("/subscribe", data=form())

    assert response.status_code == 429
    assert count_rows(session) == NO_ROWS


@pytest.mark.parametrize("endpoint", ["form", "api"])
def test_per_address_limit(
    make_client: AppFactory,
    session: Session,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
    endpoint: str,
) -> None:
    client = make_client(signup_rate_limit_per_address="2/hour")

    def sign_up(email: str) -> int:
        if endpoint == "form":
            return client.post("/subscribe", data=form(email)).status_code
        return client.post("/api/v1/subscriptions", json=api_body(email)).status_code

    ok = 200 if endpoint == "form" else 202
    assert [sign_up(EMAIL), sign_up(EMAIL)] == [ok, ok]
    before = count_rows(session)

    # The same address in another case is the same address.
    response = (
        client.post("/subscribe", data=form("READER@example.com"))
        if endpoint == "form"
        else client.post("/api/v1/subscriptions", json=api_body("READER@example.com"))
    )

    assert response.status_code == 429
    message = error_paragraph(response.text) if endpoint == "form" else response.json()["detail"]
    assert "already sent several confirmation emails" in message
    assert count_rows(session) == before
    assert len(notifier.calls) == 2
    assert sign_up("other@example.com") == ok  # another address is not held back


@pytest.mark.parametrize("name", ["Ada\r\nBcc: x@evil.com", "Ada\nReader", "Ada\rReader"])
def test_name_with_line_breaks_is_refused_on_the_form(
    client: TestClient,
    session: Session,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
    name: str,
) -> None:
    response = client.post("/subscribe", data=form(name=name))

    assert response.status_code == 400
    assert "line breaks and control characters are not allowed" in error_paragraph(response.text)
    assert f'value="{EMAIL}"' in response.text  # what they typed is kept for correction
    assert count_rows(session) == NO_ROWS
    assert notifier.calls == []


def test_name_with_line_breaks_is_refused_on_the_api(
    client: TestClient, session: Session, lists: list[NewsletterList], notifier: RecordingNotifier
) -> None:
    response = client.post("/api/v1/subscriptions", json=api_body(name="Ada\r\nBcc: x@evil.com"))

    assert response.status_code == 400
    assert "line breaks" in response.json()["detail"]
    assert count_rows(session) == NO_ROWS
    assert notifier.calls == []


def test_invalid_form_is_shown_again_with_the_error(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    response = client.post("/subscribe", data=form("not-an-address", lists=["tech"]))

    assert response.status_code == 400
    assert "not a valid email address" in error_paragraph(response.text)
    assert 'value="not-an-address"' in response.text
    assert 'name="lists" value="tech" checked' in response.text
    assert count_rows(session) == NO_ROWS


def tracking_individually(session: Session, nl: NewsletterList) -> None:
    nl.click_tracking = ClickTracking.INDIVIDUAL
    session.commit()


def signup_wording(session: Session) -> dict[int | None, str]:
    return dict(session.execute(select(ConsentEvent.list_id, ConsentEvent.wording)).all())


def test_a_list_that_stores_each_readers_clicks_says_so_beside_it_and_nowhere_else(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    tracking_individually(session, lists[0])

    page = client.get("/subscribe").text

    assert f"Shortlysts Daily Every morning's top stories. {CLICKS_STORED}" in visible_text(page)
    assert visible_text(page).count("records which links you click") == 1


def test_the_consent_log_keeps_the_words_a_reader_saw_about_their_clicks(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    tracking_individually(session, lists[0])

    response = client.post("/subscribe", data=form(lists=["daily", "tech"]))

    assert response.status_code == 200
    assert signup_wording(session) == {
        lists[0].id: f"{SIGNUP_WORDING} {CLICKS_STORED}",
        lists[1].id: SIGNUP_WORDING,
    }


def test_a_list_that_also_stores_opens_says_so(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    lists[0].track_opens = True
    tracking_individually(session, lists[0])

    client.post("/subscribe", data=form())

    assert signup_wording(session)[lists[0].id].endswith(
        "Shortlysts Daily records which links you click in its emails, and when you open "
        "them, to learn what readers read."
    )


def test_an_api_signup_records_the_notice_the_api_gives_for_the_list(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    tracking_individually(session, lists[0])

    listed = {entry["slug"]: entry for entry in client.get("/api/v1/lists").json()}
    client.post("/api/v1/subscriptions", json=api_body(lists=["daily", "tech"]))

    assert listed["daily"]["tracking_notice"] == CLICKS_STORED
    assert listed["tech"]["tracking_notice"] == ""
    wording = signup_wording(session)
    assert wording[lists[0].id] == f"{SIGNUP_WORDING} {CLICKS_STORED}"
    assert CLICKS_STORED not in wording[lists[1].id]


def test_api_lists_the_public_lists(client: TestClient, lists: list[NewsletterList]) -> None:
    response = client.get("/api/v1/lists")

    assert response.status_code == 200
    assert response.json() == [
        {
            "slug": "daily",
            "name": "Shortlysts Daily",
            "description": "Every morning's top stories.",
            "tracking_notice": "",
        },
        {
            "slug": "tech",
            "name": "Shortlysts Tech",
            "description": "Technology news, once a day.",
            "tracking_notice": "",
        },
    ]


@pytest.mark.parametrize("endpoint", ["form", "api"])
def test_signing_up_twice_with_an_accented_capital_answers_the_same(
    make_client: AppFactory,
    session: Session,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
    endpoint: str,
) -> None:
    client = make_client(raise_server_exceptions=False)
    address = "ÉLODIE@example.com"

    def sign_up() -> int:
        if endpoint == "form":
            return client.post("/subscribe", data=form(address)).status_code
        return client.post("/api/v1/subscriptions", json=api_body(address)).status_code

    first, second = sign_up(), sign_up()

    assert first == second
    assert second in (200, 202)
    assert count_rows(session).subscribers == 1


def test_blocked_address_gets_the_same_answer_and_is_never_mailed(
    client: TestClient, session: Session, lists: list[NewsletterList], notifier: RecordingNotifier
) -> None:
    blocked = Subscriber(email=EMAIL, status=SubscriberStatus.BLOCKED)
    session.add(blocked)
    session.flush()
    session.add(
        Subscription(
            subscriber_id=blocked.id,
            list_id=lists[0].id,
            status=SubscriptionStatus.UNSUBSCRIBED,
            source="import",
        )
    )
    session.commit()
    stranger = client.post("/subscribe", data=form("stranger@example.com"))
    calls_before = len(notifier.calls)

    response = client.post("/subscribe", data=form(EMAIL))

    assert (response.status_code, response.text) == (stranger.status_code, stranger.text)
    assert len(notifier.calls) == calls_before  # no confirmation email to a blocked address
