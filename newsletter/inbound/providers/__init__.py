"""Mail providers' webhooks, read: who sent the request, and what its events say.

One module per provider (:mod:`.ses`, :mod:`.sendgrid`, :mod:`.mailgun`, :mod:`.postmark`),
each with the same two steps:

- **verify** the provider's signature or credentials, and refuse anything else with
  :class:`ProviderRefused` (401/403 for a bad signature or credentials, 400 for a body that is
  not what the provider sends). Nothing is recorded for a refused request.
- **parse** the body into :class:`ProviderEvent` s, one per event the provider numbered, each
  with the :class:`~newsletter.inbound.policy.Signal` s it carries. The provider sent the mail
  and authenticated the request, so the addresses it names are trusted to find the reader
  (``address_trusted``).

Whose fault a failed delivery was is decided as for returned mail
(:func:`~newsletter.inbound.classify.categorise` on the status code and the server's reply),
combined with the provider's own verdict where that says more (a provider's suppression list
means an address that bounced before; "blocked" or "content rejected" means our mail).

Only SES needs the network: its signing certificates are fetched, from SNS hosts only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from newsletter.inbound.classify import Category
from newsletter.inbound.policy import Signal
from newsletter.inbound.process import Reader
from newsletter.models import MailEventKind
from newsletter.text import strip_unsafe

__all__ = ["ProviderEvent", "ProviderRefused"]

# How far a signed timestamp may be from our clock: a captured request cannot be replayed
# later, and providers sign each delivery attempt afresh.
MAX_AGE_S = 600


class ProviderRefused(Exception):
    """A webhook request we will not act on; ``message`` says why, for the provider's logs."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class ProviderEvent:
    """One event a provider numbered, as it came (``raw``), and what it says."""

    event_id: str  # the provider's own id: a redelivered event is recorded once
    raw: bytes
    signals: list[Signal] = field(default_factory=list)
    # Our Message-ID, when the provider passed the message's headers back: it names the
    # edition and the delivery (see newsletter.delivery.message_ids).
    message_id: str = ""
    # An unsubscribe the provider applies to all our mail (its global suppression list):
    # mirrored as leaving every list, even when the message names one.
    every_list: bool = False

    def about(self, reader: Reader) -> ProviderEvent:
        """The event with what our signed Message-ID says: the edition and list for every
        signal, and the reader when the event is about one recipient (we send each reader
        their own message, so the delivery it names is theirs)."""
        if reader.edition_id is None and reader.subscriber_id is None:
            return self
        single = len(self.signals) == 1
        signals = [
            replace(
                signal,
                edition_id=reader.edition_id,
                list_id=None
                if self.every_list and signal.kind == MailEventKind.UNSUBSCRIBE
                else reader.list_id,
                subscriber_id=reader.subscriber_id if single else signal.subscriber_id,
            )
            for signal in self.signals
        ]
        return replace(self, signals=signals)


def signed_recently(timestamp: str, now: datetime) -> None:
    """403 unless ``timestamp`` (seconds since the epoch, as signed) is within ``MAX_AGE_S``."""
    if not timestamp.isdigit():
        raise ProviderRefused(403, "The signature's timestamp is not a number of seconds.")
    if abs(now.timestamp() - int(timestamp)) > MAX_AGE_S:
        raise ProviderRefused(
            403, f"The signature's timestamp is more than {MAX_AGE_S // 60} minutes from now."
        )


def json_body(body: bytes, what: str) -> Any:
    """The parsed JSON of a webhook body, or a 400 that says what was expected."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ProviderRefused(400, f"The body is not JSON: {what} sends JSON.") from None


def text_of(value: object, limit: int = 2000) -> str:
    """A field as text: providers send numbers, strings and nulls in the same places."""
    if value is None or isinstance(value, dict | list):
        return ""
    # Control characters (NUL above all, which PostgreSQL refuses in text) and lone
    # surrogates go: a provider's field is shown and stored, never trusted as it is.
    return strip_unsafe(str(value)).strip()[:limit]


def address_of(value: object) -> str:
    """An address field, or "" when it holds characters no address has: an address is never
    cleaned into another one (``ann\ud800@`` must not become ``ann@``)."""
    text = "" if value is None or isinstance(value, dict | list) else str(value).strip()
    if not text or strip_unsafe(text) != text or any(c.isspace() for c in text):
        return ""
    return text[:320]


def encoded(value: object) -> bytes:
    """One event of a batch as JSON: what is kept as its raw form."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def content_id(value: object) -> str:
    """A stable id for an event its provider gave none: the hash of its content."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def bounce(
    address: str,
    category: Category,
    reason: str,
    *,
    status: str = "",
    diagnostic: str = "",
    action: str = "failed",
) -> Signal:
    """A bounce of ``address``, which the provider authenticated."""
    return Signal(
        MailEventKind.BOUNCE, address=address, category=category, reason=reason,
        status=status, diagnostic=diagnostic, action=action, address_trusted=True,
    )  # fmt: skip


def about_address(kind: MailEventKind, address: str, reason: str = "") -> Signal:
    """A complaint or an unsubscribe from ``address``, which the provider authenticated."""
    return Signal(kind, address=address, reason=reason, address_trusted=True)
