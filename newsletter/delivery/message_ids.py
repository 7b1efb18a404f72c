"""Our digests' Message-IDs: each names, and signs, the delivery it was.

``<7.k3j9x7q2mf.42.1f0c9e2ab3d4@news.example.com>`` is delivery 42 of edition 7. Bounces and
complaints often quote the original's headers, so the Message-ID finds the reader as the VERP
tag does (``newsletter.inbound.process``); it ends in an HMAC of the rest (48 bits), so
nobody without the secret key can make one that reads back.

The part after the edition's id is the edition's own and random: two installations that
share a secret key and their ids still make different Message-IDs. It comes from the
edition's marker key (``rendering.placeholders``), drawn at every render and stored with the
edition, and fixed once it is sending; so every batch makes the same Message-ID for a
delivery, and a message sent again keeps its Message-ID (Gmail drops a copy of one it has
seen). It is a one-way hash of the key: it tells nothing of the markers.

Editions rendered before marker keys have ``<7.42.1f0c9e2ab3d4@...>``, as every edition had
before the random part; those still read back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from functools import lru_cache

_TAG_CHARS = 12
_DIGITS = re.compile(r"[0-9]{1,18}")
_EDITION_PART = re.compile(r"[a-z2-7]{10}")


def edition_part(marker_key: str) -> str:
    """The random part of an edition's Message-IDs (10 base-32 characters, 50 bits); "" for
    an edition rendered before marker keys."""
    if not marker_key:
        return ""
    digest = hashlib.sha256(b"message-id:" + marker_key.encode()).digest()
    return base64.b32encode(digest[:10]).decode("ascii")[:10].lower()


@lru_cache(maxsize=8)
def _keyed(secret_key: str) -> hmac.HMAC:
    # The key is hashed into the HMAC's state once; each Message-ID copies that state.
    return hmac.new(secret_key.encode(), b"message-id:", hashlib.sha256)


def _tag(secret_key: str, payload: str) -> str:
    mac = _keyed(secret_key).copy()
    mac.update(payload.encode())
    return mac.hexdigest()[:_TAG_CHARS]


def _unkeyed_tag(secret_key: str, edition_id: int, delivery_id: int) -> str:
    """The signature of a Message-ID without the edition's random part."""
    message = f"{edition_id}.{delivery_id}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:_TAG_CHARS]


def for_edition(
    secret_key: str, edition_id: int, marker_key: str, domain: str
) -> Callable[[int], str]:
    """The Message-IDs of one edition's digests, by delivery id. The edition's part and its
    HMAC state are made here, once: each delivery costs one HMAC copy."""
    part = edition_part(marker_key)
    if not part:
        return lambda delivery_id: (
            f"<{edition_id}.{delivery_id}.{_unkeyed_tag(secret_key, edition_id, delivery_id)}"
            f"@{domain}>"
        )
    head = f"{edition_id}.{part}."
    keyed = _keyed(secret_key).copy()
    keyed.update(head.encode())

    def message_id(delivery_id: int) -> str:
        mac = keyed.copy()
        mac.update(str(delivery_id).encode())
        return f"<{head}{delivery_id}.{mac.hexdigest()[:_TAG_CHARS]}@{domain}>"

    return message_id


def delivery_of_message_id(secret_key: str, message_id: str) -> tuple[int, int] | None:
    """The (edition id, delivery id) one of our digests' Message-IDs names, if it verifies;
    None for anyone else's, and for a forged, altered or cut one."""
    local = message_id.strip().strip("<>").partition("@")[0]
    if not local.isascii():
        return None
    parts = local.split(".")
    if len(parts) == 4 and _EDITION_PART.fullmatch(parts[1]):
        edition, part, delivery, tag = parts
    elif len(parts) == 3:
        (edition, delivery, tag), part = parts, ""
    else:
        return None
    # Digits in ASCII only: "²".isdigit() is true, and int() refuses it.
    if not (_DIGITS.fullmatch(edition) and _DIGITS.fullmatch(delivery)):
        return None
    edition_id, delivery_id = int(edition), int(delivery)
    if part:
        expected = _tag(secret_key, f"{edition_id}.{part}.{delivery_id}")
    else:
        expected = _unkeyed_tag(secret_key, edition_id, delivery_id)
    return (edition_id, delivery_id) if hmac.compare_digest(tag, expected) else None
