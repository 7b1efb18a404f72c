"""Hostile input to the signup endpoints and to token links: always a 4xx with a message a
person can read, never a 5xx, and never a row written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import (
    ConsentEvent,
    NewsletterList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions.tokens import (
    PREFERENCES,
    UNSUBSCRIBE,
    make_confirm_token,
    make_token,
)
from tests.factories import key_of
from tests.moments import TEST_NOW
from tests.web.conftest import NO_ROWS, RecordingNotifier, count_rows, error_paragraph

FORM = "/subscribe"
API = "/api/v1/subscriptions"
GOOD = "ada@example.com"
INJECTION = "a@example.com\r\nBcc: x@evil.com"
OVER_LIMIT = 64 * 1024 + 1


@dataclass(frozen=True)
class Attack:
    path: str
    data: dict[str, Any] | None = None  # form fields
    json_body: Any = None  # serialised with json.dumps
    raw: bytes | None = None  # sent as is, with ``content_type``
    content_type: str | None = None
    expect: set[int] = field(default_factory=lambda: {400, 413, 415, 422})

    def send(self, client: TestClient) -> Any:
        if self.raw is not None:
            headers = {"content-type": self.content_type} if self.content_type else {}
            return client.post(self.path, content=self.raw, headers=headers)
        if self.data is not None:
            return client.post(self.path, data=self.data)
        return client.post(
            self.path,
            content=json.dumps(self.json_body).encode(),
            headers={"content-type": self.content_type or "application/json"},
        )


def signup_form(**fields: Any) -> dict[str, Any]:
    return {"email": GOOD, "name": "Ada", "lists": ["daily"], "frequency": "daily", **fields}


def signup_json(**fields: Any) -> dict[str, Any]:
    return {"email": GOOD, "name": "Ada", "lists": ["daily"], **fields}


def form(**fields: Any) -> Attack:
    return Attack(FORM, data=signup_form(**fields))


def api(**fields: Any) -> Attack:
    return Attack(API, json_body=signup_json(**fields))


def raw(path: str, body: bytes, content_type: str | None) -> Attack:
    return Attack(path, raw=body, content_type=content_type)


HOSTILE_FIELDS: list[tuple[str, dict[str, Any]]] = [
    # Header injection through the address or the name.
    ("email-crlf-bcc", {"email": INJECTION}),
    ("email-lf-bcc", {"email": "a@example.com\nBcc: x@evil.com"}),
    ("email-cr-only", {"email": "a@example.com\rBcc: x@evil.com"}),
    ("email-encoded-crlf", {"email": "a@example.com%0d%0aBcc:%20x@evil.com"}),
    ("name-crlf-bcc", {"name": "Ada\r\nBcc: x@evil.com"}),
    ("name-crlf-body", {"name": "Ada\r\n\r\n<h1>Win a prize</h1>"}),
    ("name-line-separator", {"name": "Ada\u2028Bcc: x@evil.com"}),
    # Several recipients, display names, addresses that only look like one.
    ("email-two-addresses", {"email": "a@example.com, x@evil.com"}),
    ("email-display-name", {"email": "Ada <a@example.com>"}),
    ("email-ip-literal", {"email": "a@[127.0.0.1]"}),
    ("email-no-dot-domain", {"email": "a@localhost"}),
    ("email-spaces-only", {"email": "   "}),
    ("email-empty", {"email": ""}),
    # Overlong fields.
    ("email-10k", {"email": "a" * 10_000 + "@example.com"}),
    ("email-321", {"email": "a" * 64 + "@" + ("b" * 60 + ".") * 4 + "com"}),
    ("name-5k", {"name": "A" * 5_000}),
    ("lists-1000", {"lists": ["daily"] * 1000}),
    ("list-slug-5k", {"lists": ["d" * 5_000]}),
    # Look-alikes, invisible and direction-changing characters, NUL.
    ("email-fullwidth-at", {"email": "ada\uff20example.com"}),
    ("email-one-dot-leader", {"email": "ada@example\u2024com"}),
    ("email-zero-width-space", {"email": "ada\u200b@example.com"}),
    ("email-zero-width-domain", {"email": "ada@ex\u200bample.com"}),
    ("email-rtl-override", {"email": "\u202emoc.elpmaxe@ada"}),
    ("email-nul", {"email": "ada\x00@example.com"}),
    ("name-zero-width-space", {"name": "Ad\u200ba"}),
    ("name-rtl-override", {"name": "Ada \u202egnp.exe"}),
    ("name-nul", {"name": "Ada\x00"}),
    ("name-bell-escape", {"name": "Ada\x07\x1b[31m"}),
    # SQL-shaped text is data, and here not an address.
    ("email-sql-or", {"email": "' OR 1=1 --"}),
    ("email-sql-drop", {"email": "a@example.com'; DROP TABLE subscribers;--"}),
    ("list-sql", {"lists": ["daily' OR '1'='1"]}),
    # Choices the endpoint does not offer.
    ("frequency-hourly", {"frequency": "hourly"}),
    ("frequency-5k", {"frequency": "d" * 5_000}),
    ("list-unknown", {"lists": ["no-such-list"]}),
    ("lists-none", {"lists": []}),
    ("list-unknown-among-known", {"lists": ["daily", "ghost"]}),
]

FORM_ATTACKS = [pytest.param(form(**fields), id=f"form-{name}") for name, fields in HOSTILE_FIELDS]
API_ATTACKS = [pytest.param(api(**fields), id=f"api-{name}") for name, fields in HOSTILE_FIELDS]

FORM_ATTACKS += [
    pytest.param(
        form(email="not an address", name="<script>alert(1)</script>"), id="form-script-name"
    ),
    pytest.param(form(email='"><script>alert(1)</script>'), id="form-script-email"),
    pytest.param(form(website="x" * 5_000), id="form-honeypot-5k"),
    pytest.param(Attack(FORM, data={}), id="form-no-fields"),
    pytest.param(raw(FORM, b"", "application/x-www-form-urlencoded"), id="form-empty-body"),
    pytest.param(raw(FORM, b"", None), id="form-empty-no-type"),
    pytest.param(
        raw(FORM, json.dumps(signup_json()).encode(), "application/json"), id="form-sent-json"
    ),
    pytest.param(
        raw(FORM, b"email=ada@example.com&lists=daily", "text/plain"), id="form-text-plain"
    ),
    pytest.param(
        raw(FORM, b"<signup><email>ada@example.com</email></signup>", "application/xml"),
        id="form-xml",
    ),
    pytest.param(
        raw(
            FORM,
            b"--x\r\nContent-Disposition: form-data; name=email\r\n\r\n",
            "multipart/form-data",
        ),
        id="form-multipart-no-boundary",
    ),
    pytest.param(
        raw(FORM, b"email=" + b"a" * OVER_LIMIT, "application/x-www-form-urlencoded"),
        id="form-body-over-64k",
    ),
]

API_ATTACKS += [
    pytest.param(api(email="not an address", name="<script>alert(1)</script>"), id="api-script"),
    pytest.param(api(lists=[f"l{i}" for i in range(21)]), id="api-21-lists"),
    pytest.param(api(lists="daily"), id="api-lists-as-string"),
    pytest.param(api(lists={"daily": True}), id="api-lists-as-object"),
    pytest.param(api(lists=[1, 2]), id="api-lists-as-numbers"),
    pytest.param(api(frequency=None), id="api-frequency-null"),
    pytest.param(api(email=None), id="api-email-null"),
    pytest.param(api(email=12345), id="api-email-number"),
    pytest.param(api(email=[GOOD]), id="api-email-list"),
    pytest.param(api(admin=True), id="api-unknown-field"),
    pytest.param(api(status="confirmed"), id="api-extra-status"),
    pytest.param(Attack(API, json_body=[signup_json()]), id="api-array"),
    pytest.param(Attack(API, json_body=42), id="api-number"),
    pytest.param(Attack(API, json_body=GOOD), id="api-bare-string"),
    pytest.param(Attack(API, json_body=None), id="api-null"),
    pytest.param(Attack(API, json_body={}), id="api-empty-object"),
    pytest.param(raw(API, b'{"email": "ada@example.com",', "application/json"), id="api-truncated"),
    pytest.param(raw(API, b"{'email': 'ada@example.com'}", "application/json"), id="api-quotes"),
    pytest.param(
        raw(API, b'{"email": "\xff\xfe@example.com"}', "application/json"), id="api-bad-utf8"
    ),
    pytest.param(
        raw(API, b"[" * 20_000 + b"]" * 20_000, "application/json"), id="api-deep-nesting"
    ),
    pytest.param(
        raw(API, b'{"email": ' + b"9" * 5_000 + b"}", "application/json"), id="api-huge-number"
    ),
    pytest.param(raw(API, b"", "application/json"), id="api-empty-body"),
    pytest.param(
        raw(API, b"email=ada%40example.com&lists=daily", "application/x-www-form-urlencoded"),
        id="api-sent-form",
    ),
    pytest.param(raw(API, json.dumps(signup_json()).encode(), "text/plain"), id="api-text-plain"),
    pytest.param(
        raw(API, b"<signup><email>ada@example.com</email></signup>", "application/xml"),
        id="api-xml",
    ),
    pytest.param(
        raw(API, json.dumps(signup_json(name="A" * OVER_LIMIT)).encode(), "application/json"),
        id="api-body-over-64k",
    ),
]


def readable_message(response: Any) -> str:
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        detail = response.json().get("detail")
        assert isinstance(detail, str), response.text
        return detail
    if content_type.startswith("text/html"):
        return error_paragraph(response.text)
    return response.text


@pytest.mark.parametrize("attack", FORM_ATTACKS + API_ATTACKS)
def test_hostile_signup_is_refused_with_a_message_and_stores_nothing(
    client: TestClient,
    session: Session,
    lists: list[NewsletterList],
    notifier: RecordingNotifier,
    attack: Attack,
) -> None:
    response = attack.send(client)

    assert response.status_code in attack.expect, response.text[:500]
    assert readable_message(response).strip(), response.text[:500]
    if attack.path == API and response.status_code != 413:
        assert response.headers["content-type"].startswith("application/json")
    assert "<script>" not in response.text  # whatever is echoed back is escaped
    assert count_rows(session) == NO_ROWS
    assert notifier.calls == []


@pytest.mark.parametrize("attack", FORM_ATTACKS)
def test_hostile_form_is_answered_with_a_page(
    client: TestClient, lists: list[NewsletterList], attack: Attack
) -> None:
    """A person at the form sees an HTML page with the error, not JSON."""
    response = attack.send(client)

    if response.status_code == 413:
        assert response.headers["content-type"].startswith("text/plain")
        return
    assert response.headers["content-type"].startswith("text/html"), response.text[:300]
    assert error_paragraph(response.text)


def test_there_are_at_least_fifty_attacks() -> None:
    assert len(FORM_ATTACKS) + len(API_ATTACKS) >= 50


def test_body_over_the_limit_without_a_declared_length_is_refused(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    def chunks() -> Any:
        yield b"email=ada%40example.com&lists=daily&name="
        for _ in range(20):
            yield b"A" * 4096

    response = client.post(
        FORM, content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )

    assert response.status_code == 413
    assert "too large" in response.text
    assert count_rows(session) == NO_ROWS


def test_body_over_the_limit_streamed_is_still_refused(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    """Whatever the status, a streamed oversized body is never processed."""

    def chunks() -> Any:
        yield b"email=ada%40example.com&lists=daily&name="
        for _ in range(20):
            yield b"A" * 4096

    response = client.post(
        FORM, content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )

    assert 400 <= response.status_code < 500
    assert count_rows(session) == NO_ROWS


def test_look_alike_address_is_a_different_reader(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    """A Cyrillic 'а' makes another mailbox: it must never reach the Latin reader's row."""
    client.post(API, json=signup_json(email="ada@example.com"))
    client.post(API, json=signup_json(email="\u0430da@example.com"))

    emails = sorted(session.scalars(select(Subscriber.email)))
    assert emails == ["ada@example.com", "\u0430da@example.com"]


# --- token links ---------------------------------------------------------------------------


@dataclass
class Reader:
    subscriber_id: int
    list_id: int


@pytest.fixture
def confirmed_reader(session: Session, lists: list[NewsletterList]) -> Reader:
    subscriber = Subscriber(email=GOOD, name="Ada")
    session.add(subscriber)
    session.flush()
    session.add(
        Subscription(
            subscriber_id=subscriber.id,
            list_id=lists[0].id,
            status=SubscriptionStatus.CONFIRMED,
            source="test",
        )
    )
    session.commit()
    return Reader(subscriber.id, lists[0].id)


def bad_tokens(settings: Settings, reader: Reader, purpose: str) -> list[tuple[str, str]]:
    """(id, token) pairs that must not work for ``purpose``."""
    secret = settings.secret_key
    good = make_token(
        secret, purpose, reader.subscriber_id, reader.list_id, key_of(reader.subscriber_id)
    )
    other_purpose = PREFERENCES if purpose == UNSUBSCRIBE else UNSUBSCRIBE
    flipped = (
        good[:-6] + ("A" if good[-6] != "A" else "B") + good[-5:]
    )  # not the last char: it holds padding bits
    someone_else = make_token(
        secret, purpose, reader.subscriber_id + 1, 1, key_of(reader.subscriber_id + 1)
    ).split(".")[0]
    return [
        ("tampered-signature", flipped),
        ("truncated", good[: len(good) // 2]),
        ("payload-swapped", someone_else + "." + good.split(".")[1]),
        (
            "wrong-purpose",
            make_token(
                secret,
                other_purpose,
                reader.subscriber_id,
                reader.list_id,
                key_of(reader.subscriber_id),
            ),
        ),
        (
            "confirm-token",
            make_confirm_token(
                secret,
                reader.subscriber_id,
                [reader.list_id],
                key_of(reader.subscriber_id),
                now=TEST_NOW,
            ),
        ),
        (
            "other-secret",
            make_token(
                "other-secret",
                purpose,
                reader.subscriber_id,
                reader.list_id,
                key_of(reader.subscriber_id),
            ),
        ),
        ("garbage", "not-a-token"),
        ("sql", "1' OR '1'='1"),
    ]


def bad_confirm_tokens(settings: Settings, reader: Reader) -> list[tuple[str, str]]:
    secret = settings.secret_key
    good = make_confirm_token(
        secret, reader.subscriber_id, [reader.list_id], key_of(reader.subscriber_id), now=TEST_NOW
    )
    flipped = (
        good[:-6] + ("A" if good[-6] != "A" else "B") + good[-5:]
    )  # not the last char: it holds padding bits
    return [
        ("tampered-signature", flipped),
        ("truncated", good[: len(good) // 2]),
        (
            "wrong-purpose",
            make_token(
                secret,
                UNSUBSCRIBE,
                reader.subscriber_id,
                reader.list_id,
                key_of(reader.subscriber_id),
            ),
        ),
        (
            "other-secret",
            make_confirm_token(
                "another-secret",
                reader.subscriber_id,
                [1],
                key_of(reader.subscriber_id),
                now=TEST_NOW,
            ),
        ),
        ("garbage", "not-a-token"),
    ]


LINKS = [
    ("GET", "/confirm/{}"),
    ("POST", "/confirm/{}"),
    ("GET", "/unsubscribe/{}"),
    ("POST", "/unsubscribe/{}"),
    ("GET", "/preferences/{}"),
    ("POST", "/preferences/{}"),
    ("POST", "/preferences/{}/unsubscribe-all"),
    ("GET", "/preferences/{}/data.json"),
    ("POST", "/preferences/{}/erase"),
]


def snapshot(session: Session) -> list[tuple[Any, ...]]:
    session.expire_all()
    subscriptions = [
        (s.id, s.status, s.frequency, s.paused_at, s.unsubscribed_at)
        for s in session.scalars(select(Subscription).order_by(Subscription.id))
    ]
    events = [e.id for e in session.scalars(select(ConsentEvent))]
    subscribers = [(s.id, s.email) for s in session.scalars(select(Subscriber))]
    return [tuple(subscriptions), tuple(events), tuple(subscribers)]


@pytest.mark.parametrize(("method", "link"), LINKS, ids=[f"{m}-{p}" for m, p in LINKS])
def test_bad_tokens_are_refused_and_change_nothing(
    client: TestClient,
    session: Session,
    settings: Settings,
    confirmed_reader: Reader,
    notifier: RecordingNotifier,
    method: str,
    link: str,
) -> None:
    if link.startswith("/confirm"):
        tokens = bad_confirm_tokens(settings, confirmed_reader)
    elif link.startswith("/unsubscribe"):
        tokens = bad_tokens(settings, confirmed_reader, UNSUBSCRIBE)
    else:
        tokens = bad_tokens(settings, confirmed_reader, PREFERENCES)
    # Every field a real form would send, so only the token is wrong.
    fields = {
        "List-Unsubscribe": "One-Click",
        "lists": [],
        "frequency": "weekly",
        "paused": "on",
        "confirm": "yes",
    }
    before = snapshot(session)

    for name, token in tokens:
        url = link.format(token)
        response = client.get(url) if method == "GET" else client.post(url, data=fields)
        assert response.status_code == 400, (name, response.status_code, response.text[:300])
        message = readable_message(response).lower()
        assert "link" in message, (name, message)
        assert "not valid" in message, (name, message)

    assert snapshot(session) == before
    assert notifier.calls == []


@pytest.mark.parametrize("path", ["/confirm/", "/unsubscribe/", "/preferences/"])
def test_overlong_token_is_refused(
    client: TestClient, session: Session, confirmed_reader: Reader, path: str
) -> None:
    before = snapshot(session)

    response = client.get(path + "A" * 5_000)

    assert response.status_code == 400
    assert error_paragraph(response.text)
    assert snapshot(session) == before
