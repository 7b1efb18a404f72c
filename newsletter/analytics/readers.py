"""The reader part of a tracked link: one slot per message, filled at personalisation.

``<ref>.<sent>.<signature>``: ``ref`` is ``a`` and a random number for an anonymous list (it
names no one: nothing stores which message carried it), or ``d`` and the delivery's id for a
list that tracks individuals. ``sent`` is when the message was prepared for sending, in Unix
seconds, base 36: a click seconds after it is a mail gateway's, not a reader's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime

from newsletter.models import ClickTracking
from newsletter.text import base36

_SIG_CHARS = 12
_MAX_PART = 80


@dataclass(frozen=True)
class Reader:
    """Whose message a click came from, as far as the list lets us know."""

    ref: str  # "a…" anonymous, "d<delivery id>" individual
    sent_at: float  # Unix seconds

    @property
    def delivery_id(self) -> int | None:
        return int(self.ref[1:]) if self.ref.startswith("d") and self.ref[1:].isdigit() else None


class ReaderParts:
    """Reader parts for the messages of one edition prepared at ``sent_at``."""

    def __init__(
        self, secret_key: str, edition_id: int, tracking: ClickTracking, sent_at: datetime
    ) -> None:
        self._mac = hmac.new(secret_key.encode(), f"reader:{edition_id}:".encode(), "sha256")
        self._individual = tracking == ClickTracking.INDIVIDUAL
        self._sent = base36(int(sent_at.timestamp()))

    def part(self, delivery_id: int) -> str:
        if self._individual:
            ref = f"d{delivery_id}"
        else:
            ref = "a" + base64.urlsafe_b64encode(os.urandom(6)).decode("ascii")
        body = f"{ref}.{self._sent}"
        mac = self._mac.copy()
        mac.update(body.encode("ascii"))
        return f"{body}.{base64.urlsafe_b64encode(mac.digest()).decode('ascii')[:_SIG_CHARS]}"


def read_reader(secret_key: str, edition_id: int, part: str) -> Reader | None:
    """The reader a part names, or None when it is not one we signed for this edition."""
    if len(part) > _MAX_PART or part.count(".") != 2:
        return None
    ref, sent, signature = part.split(".")
    try:
        sent_at = int(sent, 36)
    except ValueError:
        return None
    mac = hmac.new(
        secret_key.encode(), f"reader:{edition_id}:{ref}.{sent}".encode(), hashlib.sha256
    )
    expected = base64.urlsafe_b64encode(mac.digest()).decode("ascii")[:_SIG_CHARS]
    if not ref or not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return None
    return Reader(ref=ref, sent_at=float(sent_at))
