"""Mailgun's webhooks, ``POST /webhooks/mailgun``.

Mailgun puts its signature in the JSON body: ``signature: {timestamp, token, signature}``,
where ``signature`` is the hex HMAC-SHA256 of ``timestamp + token`` under the webhook
signing key (``NEWSLETTER_WEBHOOK_MAILGUN_SIGNING_KEY``). A timestamp more than ten minutes
from our clock is refused, so a captured request cannot be replayed later.

The signature does not cover the event, so within those ten minutes a captured request could
carry any ``event-data``. As Mailgun advises, each token is therefore spent once: the
webhook remembers it with the event (:func:`newsletter.handoff.record_provider_event`) and
refuses a new event under a token it has seen.

Each request carries one event (``event-data``), recorded by its ``id``; Mailgun passes our
Message-ID back in ``event-data.message.headers``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any

from newsletter.inbound.classify import Category, categorise
from newsletter.inbound.policy import Signal
from newsletter.inbound.providers import (
    ProviderEvent,
    ProviderRefused,
    about_address,
    address_of,
    bounce,
    json_body,
    signed_recently,
    text_of,
)
from newsletter.models import MailEventKind

READ = {"failed", "complained", "unsubscribed"}
_ENHANCED = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


def read(body: bytes) -> dict[str, Any]:
    """The webhook's JSON object; 400 if the body is not one."""
    data = json_body(body, "Mailgun")
    if not isinstance(data, dict):
        raise ProviderRefused(400, "A Mailgun webhook body is a JSON object.")
    return data


def verify(data: dict[str, Any], *, signing_key: str, now: datetime) -> str:
    """The signature's one-time token, to be spent with the event; raise
    :class:`ProviderRefused` unless Mailgun signed ``data`` within ten minutes."""
    signed = data.get("signature")
    if not isinstance(signed, dict) or not all(
        isinstance(signed.get(n), str | int) for n in ("timestamp", "token", "signature")
    ):
        raise ProviderRefused(403, "The request is not signed: Mailgun sends signature.")
    timestamp, token = str(signed["timestamp"]), str(signed["token"])
    signed_recently(timestamp, now)
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, str(signed["signature"]).lower()):
        raise ProviderRefused(
            403, "The signature does not match: the event was not signed with our Mailgun key."
        )
    return token


def parse(data: dict[str, Any], raw: bytes) -> list[ProviderEvent]:
    """The verified request's event, if it is one we act on."""
    event = data.get("event-data")
    if not isinstance(event, dict):
        raise ProviderRefused(400, "The Mailgun webhook has no event-data.")
    event_id = text_of(event.get("id"), 255)
    if not event_id:
        raise ProviderRefused(400, "The Mailgun event has no id.")
    kind = text_of(event.get("event"))
    if kind not in READ:
        return []  # delivered, opened, clicked, accepted: nothing to do
    address = address_of(event.get("recipient"))
    signals = _signals(kind, address, event) if address else []
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    message_id = text_of(headers.get("message-id"), 250) if isinstance(headers, dict) else ""
    return [
        ProviderEvent(
            event_id, raw, signals, message_id=message_id,
            every_list=kind == "unsubscribed" or _reason(event) == "suppress-unsubscribe",
        )
    ]  # fmt: skip


def _reason(event: dict[str, Any]) -> str:
    return text_of(event.get("reason")).lower()


def category_of(severity: str, reason: str, status: str, reply: str) -> tuple[Category, str]:
    """Whose fault one failed Mailgun delivery was.

    ``suppress-bounce`` is Mailgun refusing to send to an address that bounced before (hard);
    ``espblock`` is a mailbox provider refusing our mail (sender); ``old`` is a message that
    could not be delivered for too long (soft). Otherwise the reply decides.
    """
    if reason == "suppress-bounce":
        return "hard", "suppressed"
    if reason == "espblock":
        return "sender", "blocked"
    category, why = categorise(status, reply)
    if category == "sender":
        return category, why
    if reason == "old":
        return "soft", "expired"
    if severity == "temporary":
        return "soft", why if category == "soft" else "expired"
    return category, why


def _signals(kind: str, address: str, event: dict[str, Any]) -> list[Signal]:
    if kind == "complained":
        return [about_address(MailEventKind.COMPLAINT, address, "complained")]
    if kind == "unsubscribed":
        return [about_address(MailEventKind.UNSUBSCRIBE, address, "unsubscribed")]
    reason = _reason(event)
    if reason == "suppress-unsubscribe":
        return [about_address(MailEventKind.UNSUBSCRIBE, address, reason)]
    if reason == "suppress-complaint":
        return [about_address(MailEventKind.COMPLAINT, address, reason)]
    severity = text_of(event.get("severity")).lower()
    status_block = event.get("delivery-status")
    delivery = status_block if isinstance(status_block, dict) else {}
    reply = " ".join(
        text
        for text in (
            text_of(delivery.get("code"), 8),
            text_of(delivery.get("message")),
            text_of(delivery.get("description")),
        )
        if text
    )
    found = _ENHANCED.search(text_of(delivery.get("enhanced-code"), 16) or reply)
    status = found.group(0) if found else ""
    category, why = category_of(severity, reason, status, reply)
    # A temporary failure is retried by Mailgun: a warning, not yet a bounce.
    action = "delayed" if severity == "temporary" else "failed"
    return [bounce(address, category, why, status=status, diagnostic=reply, action=action)]
