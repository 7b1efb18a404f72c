"""VERP return paths: each message's envelope sender names, and signs, what it was.

``bounces@mail.example.com`` becomes ``bounces+d1r-2bz-k3j9x7q2mf@mail.example.com`` for
edition 1r (base 36) to reader 2bz, and ``bounces+n2bz-...`` for a notice (confirmation,
welcome) to that reader. Mail servers send bounces to the envelope sender, so a bounce comes
back to an address that says whose message it was, even when its text cannot be parsed.

The tag ends in an HMAC of the rest, so a forged bounce cannot name a reader: without the
secret key nobody can make a tag that verifies. It is lower case throughout, because some
servers fold the case of the local part, and short (about 20 characters) to stay far below
the 64-octet limit of a local part.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from newsletter.text import base36

DIGEST: Final = "d"
NOTICE: Final = "n"
TagKind = Literal["d", "n"]
_SIGNATURE_CHARS = 10  # 50 bits


@dataclass(frozen=True)
class Tag:
    kind: TagKind
    subscriber_id: int
    edition_id: int | None = None


@lru_cache(maxsize=8)
def _keyed(secret_key: str) -> hmac.HMAC:
    # The key is hashed into the HMAC's state once; each tag copies that state.
    return hmac.new(secret_key.encode(), b"verp:", hashlib.sha256)


def _signature(secret_key: str, payload: str) -> str:
    mac = _keyed(secret_key).copy()
    mac.update(payload.encode())
    return _encoded(mac)


def _encoded(mac: hmac.HMAC) -> str:
    # The first 10 base-32 characters come from the first 10 bytes of the digest.
    return base64.b32encode(mac.digest()[:10]).decode("ascii")[:_SIGNATURE_CHARS].lower()


def make_tag(secret_key: str, tag: Tag) -> str:
    if tag.kind == DIGEST:
        payload = f"d{base36(tag.edition_id or 0)}-{base36(tag.subscriber_id)}"
    else:
        payload = f"n{base36(tag.subscriber_id)}"
    return f"{payload}-{_signature(secret_key, payload)}"


def read_tag(secret_key: str, text: str) -> Tag | None:
    """The tag ``text`` holds if its signature verifies, else None (forged, cut, garbled)."""
    text = text.strip().lower()
    if not text.isascii():  # SMTPUTF8 lets anything into a local part
        return None
    payload, _, signature = text.rpartition("-")
    if not payload or not hmac.compare_digest(signature, _signature(secret_key, payload)):
        return None
    try:
        if payload.startswith("d"):
            edition, subscriber = payload[1:].split("-")
            return Tag(DIGEST, int(subscriber, 36), int(edition, 36))
        if payload.startswith("n"):
            return Tag(NOTICE, int(payload[1:], 36))
    except ValueError:
        return None
    return None


@dataclass(frozen=True)
class ReturnPath:
    """Envelope senders under one bounce address (``NEWSLETTER_BOUNCE_ADDRESS``)."""

    local: str
    domain: str
    secret_key: str

    @classmethod
    def parse(cls, bounce_address: str, secret_key: str) -> ReturnPath | None:
        local, at, domain = bounce_address.strip().rpartition("@")
        if not at or not local or not domain:
            return None
        return cls(local, domain.lower(), secret_key)

    def address(self, tag: Tag) -> str:
        return f"{self.local}+{make_tag(self.secret_key, tag)}@{self.domain}"

    def for_edition(self, edition_id: int) -> Callable[[int], str]:
        """The envelope senders of one edition's digests, by reader id: the same addresses
        as :meth:`address`, with the edition's part and its HMAC state made once per
        edition, so each reader costs one HMAC copy and one base-36 number."""
        head = f"d{base36(edition_id)}-"
        keyed = _keyed(self.secret_key).copy()
        keyed.update(head.encode())
        prefix, suffix = f"{self.local}+{head}", f"@{self.domain}"

        def sender(subscriber_id: int) -> str:
            reader = base36(subscriber_id)
            mac = keyed.copy()
            mac.update(reader.encode())
            return f"{prefix}{reader}-{_encoded(mac)}{suffix}"

        return sender

    def owns(self, address: str) -> bool:
        """Whether ``address`` is the bounce address itself or one of its tagged forms."""
        return self._tag_text(address) is not None

    def _tag_text(self, address: str) -> str | None:
        """What follows ``<local>+`` ("" for the bare address); None if not ours."""
        local, _, domain = address.strip().strip("<>").rpartition("@")
        if domain.lower() != self.domain:
            return None
        local, base = local.lower(), self.local.lower()
        if local == base:
            return ""
        # The bounce address may hold a "+" of its own: the tag is what follows all of it.
        return local[len(base) + 1 :] if local.startswith(base + "+") else None

    def tag_of(self, address: str) -> Tag | None:
        """The verified tag of one of our envelope senders, else None."""
        tag = self._tag_text(address)
        return read_tag(self.secret_key, tag) if tag else None
