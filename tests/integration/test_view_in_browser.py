""" "View in your browser", end to end: an edition sent by a real Celery worker through a real
SMTP server, whose link opens the edition on the served app, as in a reader's mail client."""

from __future__ import annotations

import html
import re
from datetime import datetime
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import Edition, NewsletterList
from tests.integration.helpers import sample_edition, wait_until_sent
from tests.services import LiveServer
from tests.smtp_server import RecordingHandler

READERS = ["ann@example.com", "bob@example.com"]


def served(url: str, settings: Settings, live_server: LiveServer) -> str:
    """The live server's address for a link that starts with the configured base URL."""
    base = settings.base_url.rstrip("/")
    assert url.startswith(base + "/"), url
    return live_server.url + url.removeprefix(base)


def link_in(message: EmailMessage, part: str, pattern: str) -> str:
    """The URL ``pattern`` captures in the message's ``part`` ("html" or "plain")."""
    body = message.get_body((part,))
    assert body is not None
    link = re.search(pattern, body.get_content())
    assert link, f"no View in your browser link in the {part} part"
    return html.unescape(link.group(1))


def opened(url: str, settings: Settings, live_server: LiveServer, edition: Edition) -> str:
    """Follow ``url`` on the live server; the page it shows must be ``edition``'s."""
    response = httpx.get(served(url, settings, live_server), timeout=10)
    assert response.status_code == 200
    assert f"<title>{html.escape(edition.subject, quote=False)}</title>" in response.text
    return response.text


@pytest.fixture
def delivered(
    worker: object, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime, smtp: RecordingHandler,
) -> tuple[Edition, EmailMessage]:  # fmt: skip
    from workers.tasks import send_edition

    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    send_edition.delay(edition.id)
    wait_until_sent(edition.id)
    return edition, smtp.by_recipient()[READERS[0]][0].message


def test_html_link_opens_the_edition_without_the_readers_details(
    delivered: tuple[Edition, EmailMessage], settings: Settings, live_server: LiveServer
) -> None:
    edition, message = delivered
    link = link_in(message, "html", r'<a href="([^"]+)"[^>]*>\s*View in your browser')

    page = opened(link, settings, live_server, edition)

    assert not [reader for reader in READERS if reader in page]
    assert "/unsubscribe/" not in page


def test_plain_text_link_opens_the_same_page(
    delivered: tuple[Edition, EmailMessage], settings: Settings, live_server: LiveServer
) -> None:
    edition, message = delivered

    opened(
        link_in(message, "plain", r"View in your browser: (\S+)"), settings, live_server, edition
    )
