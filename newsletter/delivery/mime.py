"""MIME assembly shared by digests and notices: text first, HTML last, CRLF, 7-bit safe."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from newsletter.delivery.headers import HEADERS
from newsletter.text import check_header_block, header_text

# Bodies are encoded quoted-printable at RFC 2045's 76 columns (the SMTP policy's 78 is the
# header limit); headers are written by delivery/headers.py.
_BODIES = SMTP.clone(max_line_length=76)


class DotSafe(bytes):
    """A message none of whose lines starts with ".": SMTP can send it without dot-stuffing.

    Prepared digests are made so (a leading dot is quoted-printable "=2E"), which spares the
    transport a scan of every 70 KB message.
    """


def build_message(
    *,
    from_name: str,
    from_address: str,
    to: str,
    subject: str,
    date: datetime,
    message_id: str,
    text: str,
    html: str,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A multipart/alternative message ready for SMTP.

    Every header value passes :func:`~newsletter.text.header_text` and the generated header
    block is checked to hold exactly the headers set: content cannot add one.
    """
    message = EmailMessage(policy=_BODIES)
    message["From"] = Address(display_name=header_text(from_name), addr_spec=from_address)
    message["To"] = header_line(to)
    message["Subject"] = header_line(subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = header_line(message_id)
    for name, value in (headers or {}).items():
        message[name] = header_line(value)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    data = message.as_bytes(policy=HEADERS)
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    check_header_block(head, [*_SET_FIRST, *(headers or {}), *_SET_LAST])
    return data


HEADER_LIMIT = 900
_SET_FIRST = ["From", "To", "Subject", "Date", "Message-ID"]
_SET_LAST = ["MIME-Version", "Content-Type"]


def header_line(value: str) -> str:
    """A header value made by the system (addresses, URLs, ids): one line, at any length."""
    return header_text(value, HEADER_LIMIT)
