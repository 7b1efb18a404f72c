"""What a post or an editor writes cannot reach into a reader's message: no header of its own
(RFC 2047 encoded words included), no reader's address or link, no broken edition.

Each attack goes in through the editors' API as the CMS would push it, and is judged on the
bytes the SMTP server received.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.handoff import InProcessHandoff
from newsletter.models import NewsletterList, Post
from newsletter.subscriptions.service import Signup, subscribe
from tests.smtp_server import RecordingHandler, SMTPServer
from tests.web.conftest import AppFactory

READER = "ann@example.com"
INJECTED_REPLY_TO = "Breaking =?utf-8?b?DQpSZXBseS1UbzogYXR0YWNrZXJAZXZpbC5leGFtcGxl?= news"
INJECTED_BCC = "Hi =?utf-8?q?=0D=0ABcc:_x@evil?="


@pytest.fixture
def handoff(  # type: ignore[override]
    settings: Settings, clock: FrozenClock, smtp_server: SMTPServer
) -> InProcessHandoff:
    """Sends for real, in this process, to the test SMTP server."""
    return InProcessHandoff(settings.model_copy(update={"smtp_url": smtp_server.url}), clock)


@pytest.fixture
def api(make_client: AppFactory, api_token: str) -> TestClient:
    return make_client(headers={"authorization": f"Bearer {api_token}"})


@pytest.fixture
def reader(session: Session, daily_list: NewsletterList, now: datetime) -> str:
    subscribe(session, daily_list, Signup(READER), now=now, confirmed=True, source="test")
    session.commit()
    return READER


def push(api: TestClient, now: datetime, **post: object) -> None:
    body = {
        "url": "https://www.shortlysts.com/posts/storm",
        "title": "Storm hits the coast",
        "dek": "What happened overnight.",
        "published_at": (now - timedelta(hours=3)).isoformat(),
        **post,
    }
    response = api.post("/api/v1/posts", json=body)
    assert response.status_code == 201, response.text


def wait_for(smtp: RecordingHandler, count: int = 1) -> list[EmailMessage]:
    deadline = time.monotonic() + 20
    while len(smtp.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp.received) >= count, "the message reached the SMTP server"
    parsed = [message_from_bytes(m.data, policy=policy.default) for m in smtp.received]
    return [m for m in parsed if isinstance(m, EmailMessage)]


def header_names(message: EmailMessage) -> list[str]:
    return [name.lower() for name in message.keys()]  # noqa: SIM118 (a message is no dict)


def build_and_send(api: TestClient) -> int:
    edition = api.post("/api/v1/lists/daily/editions").json()
    sent = api.post(f"/api/v1/editions/{edition['id']}/send")
    assert sent.status_code == 202, sent.text
    return int(edition["id"])


# --- 1. Header injection through encoded words ---------------------------------------------


def test_an_encoded_line_break_in_a_post_title_adds_no_header(
    api: TestClient, reader: str, smtp: RecordingHandler, now: datetime
) -> None:
    push(api, now, title=INJECTED_REPLY_TO)

    build_and_send(api)

    [message] = wait_for(smtp)
    raw_lines = smtp.received[0].data.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert not [line for line in raw_lines if line.lower().startswith(b"reply-to")]
    assert "reply-to" not in header_names(message)
    assert message["Subject"].endswith(": Breaking Reply-To: attacker@evil.example news")


def test_an_editors_encoded_subject_adds_no_bcc_to_a_test_copy(
    api: TestClient, reader: str, smtp: RecordingHandler, now: datetime
) -> None:
    push(api, now)
    edition = api.post("/api/v1/lists/daily/editions").json()
    api.patch(f"/api/v1/editions/{edition['id']}", json={"subject": INJECTED_BCC})

    response = api.post(f"/api/v1/editions/{edition['id']}/test", json={"address": READER})

    assert response.status_code == 202
    [message] = wait_for(smtp)
    assert "bcc" not in header_names(message)
    assert message["Subject"] == "[TEST] Hi Bcc: x@evil"
    assert smtp.received[0].recipients == [READER]


# --- 3. Content cannot fill in a reader's values --------------------------------------------


def test_an_image_url_naming_the_markers_gets_no_reader_values(
    api: TestClient, reader: str, smtp: RecordingHandler, now: datetime
) -> None:
    spy = "https://evil.example/p.png?e=__NL_EMAIL__&p=__NL_PREFERENCES_URL__"
    push(api, now, image_url=spy)

    build_and_send(api)

    [message] = wait_for(smtp)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    image = next(src for src in _attribute(html, "src") if "evil.example" in src)
    assert parse_qs(urlsplit(image).query) == {
        "e": ["__NL_EMAIL__"], "p": ["__NL_PREFERENCES_URL__"]
    }  # fmt: skip
    assert "/preferences/" not in image
    assert READER in text, "the reader's own footer still names them"


def test_a_title_naming_the_header_slot_keeps_the_readers_address_out_of_the_subject(
    api: TestClient, reader: str, smtp: RecordingHandler, now: datetime
) -> None:
    push(api, now, title="Mail nl-slot-to@slot.invalid now")

    build_and_send(api)

    [message] = wait_for(smtp)
    assert READER not in message["Subject"]
    assert message["To"] == READER


def _attribute(html: str, name: str) -> list[str]:
    return [unescape(v) for v in re.findall(rf'\b{name}="([^"]*)"', html)]


# --- 4. One bad character does not break an edition -----------------------------------------


@pytest.mark.parametrize("title", ["Hello\u0001world", "Hello\ufffeworld", "Hello\uffffworld"])
def test_a_title_with_a_control_or_noncharacter_is_stored_clean_and_builds(
    api: TestClient, reader: str, now: datetime, title: str
) -> None:
    push(api, now, title=title)

    response = api.post("/api/v1/lists/daily/editions")

    assert response.status_code == 201
    assert api.get("/api/v1/posts").json()["items"][0]["title"] == "Helloworld"


def test_a_control_character_stored_before_the_checks_does_not_stop_an_edition(
    api: TestClient, session: Session, reader: str, now: datetime
) -> None:
    push(api, now)
    # As a row written by an older release, which did not strip it at ingest.
    session.execute(update(Post).values(title="Storm\u0001 hits\uffff the coast"))
    session.commit()

    response = api.post("/api/v1/lists/daily/editions")

    assert response.status_code == 201
    assert "Storm hits the coast" in response.json()["subject"]
