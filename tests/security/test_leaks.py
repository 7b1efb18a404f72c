"""Issue 10, finding 14: reader tokens kept out of access logs and caches, and plus-addressing
counted as the one inbox it is by the per-address signup limit."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import NewsletterList, Subscriber
from newsletter.subscriptions.addresses import mailbox
from newsletter.subscriptions.tokens import PREFERENCES, UNSUBSCRIBE, make_token
from newsletter.web.token_urls import carries_token, redact
from tests.web.conftest import AppFactory, RecordingHandoff, error_paragraph

SECRET = "WyIxIiwyXQ.SeCrEtSiGnAtUrE"  # shaped like a reader token; never valid


def test_served_access_log_has_no_reader_tokens(served: tuple[str, Path]) -> None:
    url, log = served

    for path in (
        f"/unsubscribe/{SECRET}",
        f"/confirm/{SECRET}",
        f"/preferences/{SECRET}/data.json",
        f"/subscribe?list=daily&token={SECRET}",
    ):
        httpx.get(f"{url}{path}", timeout=10)

    lines = [line for line in log.read_text().splitlines() if '"GET /' in line]
    assert len(lines) >= 4, log.read_text()
    assert not [line for line in lines if SECRET in line]
    assert any('"GET /unsubscribe/[redacted] HTTP/1.1" 400' in line for line in lines), lines
    assert any("/subscribe?list=daily&token=[redacted]" in line for line in lines), lines


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_app_installs_the_redaction_on_the_access_log(client: TestClient) -> None:
    access, recorder = logging.getLogger("uvicorn.access"), Recorder()
    level = access.level
    access.addHandler(recorder)
    access.setLevel(logging.INFO)
    try:
        # uvicorn's own call, as its protocols make it for every request
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "192.0.2.7:51000", "POST", f"/preferences/{SECRET}/erase", "1.1", 200,
        )  # fmt: skip
    finally:
        access.removeHandler(recorder)
        access.setLevel(level)

    assert recorder.lines == ['192.0.2.7:51000 - "POST /preferences/[redacted]/erase HTTP/1.1" 200']


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (f"/confirm/{SECRET}", "/confirm/[redacted]"),
        (f"/unsubscribe/{SECRET}?x=1", "/unsubscribe/[redacted]?x=1"),
        (f"/preferences/{SECRET}/unsubscribe-all", "/preferences/[redacted]/unsubscribe-all"),
        (f"/subscribe?token={SECRET}&a=b", "/subscribe?token=[redacted]&a=b"),
        ("/archive/daily/2027-03-28", "/archive/daily/2027-03-28"),
    ],
)
def test_redact(target: str, shown: str) -> None:
    assert redact(target) == shown


def test_every_token_route_is_known_to_carry_a_token(client: TestClient) -> None:
    """A new reader-token route is covered by redaction and no-store, or this fails."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    token_routes = [path for path in paths if "{token}" in path]
    assert len(token_routes) >= 5, token_routes
    for path in token_routes:
        assert carries_token(path.replace("{token}", SECRET)), path
        assert SECRET not in redact(path.replace("{token}", SECRET)), path


def test_every_reader_part_route_is_known_to_carry_a_token(client: TestClient) -> None:
    """The reader part of a tracked link or pixel is redacted and never stored; its link part
    is the same for every reader and is kept, so logs still say which story."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    reader_routes = [path for path in paths if "{reader}" in path]
    assert len(reader_routes) == 2, reader_routes
    for path in reader_routes:
        target = re.sub(r"\{(link|pixel)\}", "1.2.sig", path).replace("{reader}", SECRET)
        assert carries_token(target), path
        assert redact(target).endswith("/1.2.sig/[redacted]"), path


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/confirm/{SECRET}"),
        ("POST", f"/confirm/{SECRET}"),
        ("GET", f"/unsubscribe/{SECRET}"),
        ("GET", f"/preferences/{SECRET}"),
        ("GET", f"/preferences/{SECRET}/data.json"),
        ("POST", f"/preferences/{SECRET}/erase"),
    ],
)
def test_token_pages_are_not_stored(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)

    assert response.status_code == 400  # a bad link, and still not to be kept
    assert response.headers["cache-control"] == "no-store"


def test_a_readers_own_pages_and_data_are_not_stored(
    client: TestClient, session: Session, lists: list[NewsletterList]
) -> None:
    client.post("/api/v1/subscriptions", json={"email": "ada@example.com", "lists": ["daily"]})
    reader = session.scalars(select(Subscriber)).one()
    secret = client.app.state.web.settings.secret_key  # type: ignore[attr-defined]

    def token(purpose: str) -> str:
        return make_token(secret, purpose, reader.id, lists[0].id, reader.token_key)

    for path in (
        f"/preferences/{token(PREFERENCES)}",
        f"/preferences/{token(PREFERENCES)}/data.json",
        f"/unsubscribe/{token(UNSUBSCRIBE)}",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store", path

    one_click = client.post(
        f"/unsubscribe/{token(UNSUBSCRIBE)}", data={"List-Unsubscribe": "One-Click"}
    )
    assert one_click.status_code == 200
    assert one_click.headers["cache-control"] == "no-store"


def test_pages_without_a_token_stay_cacheable(client: TestClient, lists: list) -> None:
    assert "cache-control" not in client.get("/subscribe").headers
    assert "cache-control" not in client.get("/api/v1/lists").headers


@pytest.mark.parametrize(
    ("address", "inbox"),
    [
        ("victim+1@example.com", "victim@example.com"),
        ("Victim+a+b@Example.COM", "victim@example.com"),
        ("victim@example.com", "victim@example.com"),
        ("+tag@example.com", "+tag@example.com"),
    ],
)
def test_mailbox(address: str, inbox: str) -> None:
    assert mailbox(address) == inbox


def test_plus_addressing_does_not_buy_more_confirmation_emails(
    make_client: AppFactory, lists: list[NewsletterList], notifier: RecordingHandoff
) -> None:
    client = make_client(signup_rate_limit_per_address="2/hour")
    form = {"name": "", "lists": ["daily"], "frequency": "daily"}

    answers = [
        client.post("/subscribe", data={**form, "email": email})
        for email in ("victim+1@example.com", "Victim+2@example.com", "victim+3@example.com")
    ]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "already sent several confirmation emails" in error_paragraph(answers[2].text)
    assert len(notifier.of_kind("confirm")) == 2
    other = client.post("/subscribe", data={**form, "email": "someone.else@example.com"})
    assert other.status_code == 200
