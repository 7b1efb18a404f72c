"""Postmark's webhooks, ``POST /webhooks/postmark``.

Postmark authenticates with HTTP basic auth: the webhook URL is configured as
``https://user:password@host/webhooks/postmark``, and the credentials are compared in constant
time with ``NEWSLETTER_WEBHOOK_POSTMARK_CREDENTIALS`` ("user:password"). Each request carries
one record, by ``RecordType``:

- ``Bounce`` and ``SpamComplaint``: recorded by Postmark's bounce ``ID``, unique and stable
  across retries; ``Type`` is Postmark's verdict and ``Details`` the server's reply.
- ``SubscriptionChange``: no id of its own, so recorded by what names it (message, recipient,
  time of change, suppressed or not), which a retry repeats exactly.

Postmark does not pass the message's headers back, so our Message-ID is not known here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
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
    text_of,
)
from newsletter.models import MailEventKind

READ = {"Bounce", "SpamComplaint", "SubscriptionChange"}
# Bounce types that are Postmark's verdict on our own mail: never the reader's fault.
_OURS: dict[str, str] = {
    "SpamNotification": "spam",
    "VirusNotification": "virus",
    "Blocked": "blocked",
    "DMARCPolicy": "authentication",
    "ChallengeVerification": "policy",
}
_ENHANCED = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


class Unauthorised(ProviderRefused):
    """401, with the challenge a client expects."""

    def __init__(self, message: str) -> None:
        super().__init__(401, message)


def verify(authorization: str, *, credentials: str) -> None:
    """Raise :class:`ProviderRefused` (401) unless ``authorization`` is our basic auth."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthorised("Postmark's webhook needs basic auth: put user:password in its URL.")
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorised("The basic auth credentials are not base64.") from None
    if not hmac.compare_digest(given, credentials.encode()):
        raise Unauthorised("The basic auth credentials are not the ones this site expects.")


def parse(body: bytes) -> list[ProviderEvent]:
    """The record in ``body``, if it is one we act on."""
    record = json_body(body, "Postmark")
    if not isinstance(record, dict):
        raise ProviderRefused(400, "A Postmark webhook body is a JSON object.")
    kind = text_of(record.get("RecordType"))
    if kind not in READ:
        return []  # deliveries, opens, clicks: nothing to do
    if kind == "SubscriptionChange":
        return [_subscription_change(record, body)]
    bounce_id = text_of(record.get("ID"), 64)
    if not bounce_id:
        raise ProviderRefused(400, f"The Postmark {kind} record has no ID.")
    address = address_of(record.get("Email"))
    signals = _bounce(record, address) if address else []
    return [ProviderEvent(bounce_id, body, signals)]


def category_of(bounce_type: str, details: str) -> tuple[Category, str] | None:
    """Whose fault a Postmark bounce of ``bounce_type`` was; None for types that are not a
    failed delivery (auto-responders, address changes, subscribe requests, ...)."""
    if bounce_type in _OURS:
        return "sender", _OURS[bounce_type]
    found = _ENHANCED.search(details)
    category, reason = categorise(found.group(0) if found else "", details)
    if category == "sender" or bounce_type == "Unknown":
        return category, reason
    if bounce_type == "HardBounce":
        return "hard", reason if category == "hard" else "user_unknown"
    if bounce_type == "BadEmailAddress":
        return "hard", "user_unknown"
    if bounce_type in ("SoftBounce", "Transient", "DnsError"):
        return "soft", reason
    return None


def _bounce(record: dict[str, Any], address: str) -> list[Signal]:
    bounce_type = text_of(record.get("Type"))
    if bounce_type == "SpamComplaint" or text_of(record.get("RecordType")) == "SpamComplaint":
        return [about_address(MailEventKind.COMPLAINT, address, "spam_complaint")]
    if bounce_type == "Unsubscribe":
        return [about_address(MailEventKind.UNSUBSCRIBE, address, "unsubscribe")]
    details = text_of(record.get("Details"))
    judged = category_of(bounce_type, details)
    if judged is None:
        return []
    category, reason = judged
    found = _ENHANCED.search(details)
    # "Transient" is Postmark's "message delayed": a warning, not yet a bounce.
    action = "delayed" if bounce_type == "Transient" else "failed"
    return [
        bounce(
            address, category, reason, status=found.group(0) if found else "",
            diagnostic=details, action=action,
        )
    ]  # fmt: skip


def _subscription_change(record: dict[str, Any], body: bytes) -> ProviderEvent:
    names = [
        text_of(record.get(n), 320)
        for n in ("MessageID", "Recipient", "ChangedAt", "SuppressSending")
    ]
    if not all(names[:3]):
        raise ProviderRefused(
            400, "The SubscriptionChange record has no MessageID, Recipient or ChangedAt."
        )
    event_id = "subscription-change:" + ":".join(names)
    address = address_of(record.get("Recipient"))
    signals: list[Signal] = []
    why = text_of(record.get("SuppressionReason"))
    # A reactivated address (SuppressSending false) is recorded only: an operator unblocks.
    if record.get("SuppressSending") is True:
        if why == "HardBounce":
            signals = [bounce(address, "hard", "suppressed")]
        elif why == "SpamComplaint":
            signals = [about_address(MailEventKind.COMPLAINT, address, "spam_complaint")]
        elif text_of(record.get("Origin")) == "Recipient":
            # The reader followed Postmark's unsubscribe link (a suppression made by us or
            # Postmark's staff, Origin Customer or Admin, is not the reader's request).
            signals = [about_address(MailEventKind.UNSUBSCRIBE, address, "manual_suppression")]
    return ProviderEvent(event_id, body, signals, every_list=True)
