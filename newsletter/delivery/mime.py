"""MIME assembly shared by digests and notices: text first, HTML last, CRLF, 7-bit safe."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime


class DotSafe(bytes):
    """A message none of whose lines starts with ".": SMTP can send it without dot-stuffing.

    Prepared digests are made so (a leading dot is quoted-printable "=2E"), which spares the
    transport a scan of every 70 KB message.
    """


# Bodies are encoded at 76 columns (quoted-printable); headers are generated unfolded, up to
# 998 octets, so a long List-Unsubscribe is never turned into an encoded-word.
_UNFOLDED = SMTP.clone(max_line_length=998)


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
    """A multipart/alternative message ready for SMTP."""
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=from_name, addr_spec=from_address)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message.as_bytes(policy=_UNFOLDED)
