"""Returned mail as an operator reviews it: pages of stored messages with what each did, and
one message in detail (its headers, its events, its error, its raw bytes).

Shared by ``newsletter inbound list|show`` and the admin's "Mail that came back" pages. The
rows of spent signature tokens (:data:`~newsletter.inbound.intake.SPENT_SOURCE_SUFFIX`) are
no mail and are never shown. A raw message is anyone's bytes: it is decoded here with
replacement characters, so whoever shows it only has to escape it, never to decode it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from newsletter.inbound.intake import SPENT_SOURCE_SUFFIX
from newsletter.models import InboundMessage, InboundStatus, MailEvent

# The headers that say what a message is and where it came from, in this order.
SUMMARY_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "Content-Type", "Auto-Submitted",
    "X-Failed-Recipients", "Return-Path", "Delivered-To",
)  # fmt: skip
# Enough of a header block for any real message; a larger one is someone's attack.
_MAX_HEAD_BYTES = 64 * 1024
_MAX_HEADER_CHARS = 500


@dataclass(frozen=True)
class EventLine:
    """What a returned message said about one address, and what was done."""

    kind: str
    category: str
    status: str
    reason: str
    outcome: str
    address: str
    subscriber_id: int | None
    edition_id: int | None
    diagnostic: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "category": self.category, "status": self.status,
            "reason": self.reason, "outcome": self.outcome, "address": self.address,
            "subscriber_id": self.subscriber_id, "edition_id": self.edition_id,
            "diagnostic": self.diagnostic,
        }  # fmt: skip


@dataclass(frozen=True)
class Returned:
    """One stored message (or provider event), as the list of them shows it."""

    id: int
    received_at: datetime
    source: str
    size: int
    kind: str
    status: InboundStatus
    error: str
    events: list[EventLine]

    @property
    def error_line(self) -> str:
        """The error's first line: the rest is for the message's own page."""
        return self.error.strip().partition("\n")[0]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "received_at": self.received_at.isoformat(), "source": self.source,
            "size": self.size, "kind": self.kind, "status": self.status.value,
            "error": self.error_line, "events": [e.as_json() for e in self.events],
        }  # fmt: skip


@dataclass(frozen=True)
class ReturnedPage:
    """One page of stored messages, the latest first."""

    total: int
    page: int
    per_page: int
    messages: list[Returned]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class ReturnedDetail:
    """One stored message in full, for its own page."""

    message: Returned
    envelope_from: str
    recipients: list[str]
    processed_at: datetime | None
    headers: list[tuple[str, str]]
    raw: bytes | None  # None once purged after the retention period

    def raw_text(self, limit: int) -> tuple[str, bool]:
        """The raw message as text, at most ``limit`` bytes of it; and whether it was cut."""
        if self.raw is None:
            return "", False
        return self.raw[:limit].decode("utf-8", "replace"), len(self.raw) > limit


def _mail() -> ColumnElement[bool]:
    return ~InboundMessage.source.endswith(SPENT_SOURCE_SUFFIX)


def returned_messages(
    session: Session, *, status: InboundStatus | None = None, page: int = 1, per_page: int = 50
) -> ReturnedPage:
    """A page of stored messages, the latest first; only those of ``status`` if given."""
    where = [_mail()] + ([InboundMessage.status == status] if status is not None else [])
    total = session.scalar(select(func.count()).select_from(InboundMessage).where(*where))
    rows = session.scalars(
        select(InboundMessage)
        .where(*where)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .offset((max(page, 1) - 1) * per_page)
        .limit(per_page)
    ).all()
    events = _events(session, [row.id for row in rows])
    messages = [_returned(row, events.get(row.id, [])) for row in rows]
    return ReturnedPage(int(total or 0), page, per_page, messages)


def returned_message(session: Session, message_id: int) -> ReturnedDetail | None:
    """One stored message in full; None if there is none by that id."""
    row = session.scalar(select(InboundMessage).where(InboundMessage.id == message_id, _mail()))
    if row is None:
        return None
    return ReturnedDetail(
        message=_returned(row, _events(session, [row.id]).get(row.id, [])),
        envelope_from=row.envelope_from,
        recipients=[r for r in row.recipients.splitlines() if r],
        processed_at=row.processed_at,
        headers=header_summary(row.raw or b""),
        raw=row.raw,
    )


def header_summary(raw: bytes) -> list[tuple[str, str]]:
    """The :data:`SUMMARY_HEADERS` the message has, decoded, one line each; never raises on
    a malformed message (that is exactly what an operator opens this for)."""
    head = raw[:_MAX_HEAD_BYTES].replace(b"\r\n", b"\n").partition(b"\n\n")[0]
    parsed = HeaderParser(policy=compat32).parsestr(head.decode("utf-8", "replace"))
    found = []
    for name in SUMMARY_HEADERS:
        value = parsed.get(name)
        if value is not None:
            found.append((name, _readable(str(value))))
    return found


def _readable(value: str) -> str:
    try:
        decoded = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError):  # an unknown charset, a broken word
        decoded = value
    return " ".join(decoded.split())[:_MAX_HEADER_CHARS]


def _events(session: Session, message_ids: Sequence[int]) -> dict[int, list[EventLine]]:
    if not message_ids:
        return {}
    found: dict[int, list[EventLine]] = {}
    rows = session.scalars(
        select(MailEvent)
        .where(MailEvent.inbound_message_id.in_(message_ids))
        .order_by(MailEvent.id)
    )
    for e in rows:
        line = EventLine(
            e.kind.value, e.category, e.status, e.reason, e.outcome, e.address,
            e.subscriber_id, e.edition_id, e.diagnostic,
        )  # fmt: skip
        found.setdefault(e.inbound_message_id or 0, []).append(line)
    return found


def _returned(row: InboundMessage, events: list[EventLine]) -> Returned:
    return Returned(
        row.id, row.received_at, row.source, row.size, row.kind, row.status, row.error, events
    )
