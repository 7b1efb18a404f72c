"""SendGrid's signed Event Webhook, ``POST /webhooks/sendgrid``.

SendGrid signs ``timestamp + body`` with ECDSA (P-256, SHA-256) and sends the base64 DER
signature in ``X-Twilio-Email-Event-Webhook-Signature`` and the timestamp in
``X-Twilio-Email-Event-Webhook-Timestamp``; ``NEWSLETTER_WEBHOOK_SENDGRID_PUBLIC_KEY`` is the
verification key SendGrid shows (base64 DER). A timestamp more than ten minutes away from
our clock is refused, so a captured request cannot be replayed later; SendGrid signs each
delivery attempt afresh.

A body is a JSON array of events; each is recorded by its ``sg_event_id``. SendGrid passes
our Message-ID back as ``smtp-id`` on delivery events.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.inbound.classify import Category, categorise
from newsletter.inbound.policy import Signal
from newsletter.inbound.providers import (
    ProviderEvent,
    ProviderRefused,
    about_address,
    address_of,
    bounce,
    content_id,
    encoded,
    json_body,
    signed_recently,
    text_of,
)
from newsletter.models import MailEventKind

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

# bounce_classification: SendGrid's own reading of the reply.
_CLASSIFIED_OURS = {
    "Reputation": "blocked",
    "Content": "content",
    "Frequency or Volume Too High": "rate_limited",
}
# The events we read; the rest (processed, delivered, open, click, ...) are not recorded.
READ = {"bounce", "dropped", "deferred", "spamreport", "unsubscribe", "group_unsubscribe"}


def verify(body: bytes, headers: Mapping[str, str], *, public_key: str, now: datetime) -> None:
    """Raise :class:`ProviderRefused` unless SendGrid signed ``body`` within ten minutes."""
    signature_text = headers.get(SIGNATURE_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not signature_text or not timestamp:
        raise ProviderRefused(
            403, f"The request is not signed: SendGrid sends {SIGNATURE_HEADER} and its timestamp."
        )
    signed_recently(timestamp, now)
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        # Our setting, not the request, is wrong: the operator must fix it.
        raise ProviderRefused(
            403, "NEWSLETTER_WEBHOOK_SENDGRID_PUBLIC_KEY is not a base64 DER public key."
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProviderRefused(403, "NEWSLETTER_WEBHOOK_SENDGRID_PUBLIC_KEY is not an ECDSA key.")
    try:
        signature = base64.b64decode(signature_text, validate=True)
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise ProviderRefused(
            403, "The signature does not match: the events were not signed by SendGrid as sent."
        ) from None


def parse(body: bytes) -> list[ProviderEvent]:
    """The events we act on, one :class:`ProviderEvent` each."""
    data = json_body(body, "SendGrid")
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ProviderRefused(400, "SendGrid's Event Webhook sends a JSON array of events.")
    events = []
    for event in data:
        kind = text_of(event.get("event"))
        if kind not in READ:
            continue
        event_id = text_of(event.get("sg_event_id"), 255) or content_id(event)
        events.append(
            ProviderEvent(
                event_id,
                encoded(event),
                _signals(kind, event),
                message_id=text_of(event.get("smtp-id"), 250),
                every_list=kind == "unsubscribe" or _dropped_as(event) == "unsubscribed",
            )
        )
    return events


def category_of(
    bounce_type: str, classification: str, status: str, reply: str
) -> tuple[Category, str]:
    """Whose fault one SendGrid bounce was.

    ``type: blocked`` is SendGrid's word for a refusal of our mail (reputation, content,
    policy), so it never counts against the reader; a reply that says so decides the same
    way for ``type: bounce``.
    """
    category, reason = categorise(status, reply)
    if bounce_type == "blocked":
        return "sender", reason if category == "sender" else "blocked"
    if category == "sender":
        return category, reason
    if classification in _CLASSIFIED_OURS:
        return "sender", _CLASSIFIED_OURS[classification]
    if classification == "Invalid Address" and category != "hard":
        return "hard", "user_unknown"
    return category, reason


def _dropped_as(event: dict[str, Any]) -> str:
    """What a dropped message says about the address: SendGrid drops mail to an address on
    its suppression lists (bounced, unsubscribed, reported spam) and to invalid ones."""
    reason = text_of(event.get("reason")).lower()
    if "bounced" in reason:
        return "suppressed"
    if reason.startswith("invalid") and "smtpapi" not in reason:
        return "invalid"
    if "unsubscribed" in reason:
        return "unsubscribed"
    if "spam reporting" in reason:
        return "complained"
    if "spam content" in reason:
        return "content"
    return ""


def _signals(kind: str, event: dict[str, Any]) -> list[Signal]:
    address = address_of(event.get("email"))
    if not address:
        return []
    if kind == "spamreport":
        return [about_address(MailEventKind.COMPLAINT, address, "spamreport")]
    if kind in ("unsubscribe", "group_unsubscribe"):
        return [about_address(MailEventKind.UNSUBSCRIBE, address, kind)]
    if kind == "deferred":
        reply = text_of(event.get("response"))
        return [bounce(address, "soft", "delayed", diagnostic=reply, action="delayed")]
    if kind == "dropped":
        return _dropped(address, event)
    status = text_of(event.get("status"), 16)
    reply = text_of(event.get("reason"))
    category, reason = category_of(
        text_of(event.get("type")), text_of(event.get("bounce_classification")), status, reply
    )
    return [bounce(address, category, reason, status=status, diagnostic=reply)]


def _dropped(address: str, event: dict[str, Any]) -> list[Signal]:
    why = _dropped_as(event)
    detail = text_of(event.get("reason"))
    if why in ("suppressed", "invalid"):
        reason = "suppressed" if why == "suppressed" else "user_unknown"
        return [bounce(address, "hard", reason, diagnostic=detail)]
    if why == "unsubscribed":
        return [about_address(MailEventKind.UNSUBSCRIBE, address, "dropped")]
    if why == "complained":
        return [about_address(MailEventKind.COMPLAINT, address, "dropped")]
    if why == "content":
        return [bounce(address, "sender", "content", diagnostic=detail)]
    return []  # dropped for our own configuration: nothing about the reader
