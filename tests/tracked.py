"""An edition sent to readers through the real batch path, and the tracked links in what
each reader got: for the click-tracking tests."""

from __future__ import annotations

import re
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy.orm import Session

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.models import Edition, NewsletterList
from tests.factories import edition_with_readers

_TRACKED = re.compile(r"https?://[^\s\"'<>]+/r/[^\s\"'<>]+")
_PIXEL = re.compile(r"https?://[^\s\"'<>]+/o/[^\s\"'<>]+")


def send_to_readers(
    session: Session, nl: NewsletterList, readers: list[str], *, now: datetime,
    settings: Settings, clock: Clock, posts: int = 6,
) -> tuple[Edition, dict[str, EmailMessage]]:  # fmt: skip
    """Build, start and send an edition; each reader's message as they received it."""
    edition = edition_with_readers(session, nl, readers, now=now, settings=settings, posts=posts)
    start_sending(session, edition.id, now=now)
    session.commit()
    transport = MemoryTransport()
    for batch in pending_batches(session, edition.id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=clock)
    received = {
        rcpt: message_from_bytes(data, policy=policy.default)  # type: ignore[misc]
        for _, rcpt, data in transport.sent
    }
    return edition, received  # type: ignore[return-value]


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body((subtype,))
    assert body is not None
    return str(body.get_content())


def tracked_links(message: EmailMessage, subtype: str = "html") -> list[str]:
    """The tracked links of one part, each once, in the order they appear."""
    found = _TRACKED.findall(part(message, subtype).replace("&amp;", "&"))
    return list(dict.fromkeys(found))


def open_pixel(message: EmailMessage) -> str | None:
    found = _PIXEL.findall(part(message, "html"))
    return found[0] if found else None


def path_of(url: str) -> str:
    """The link as a request path (the test client serves every host)."""
    return "/" + url.split("/", 3)[3]
