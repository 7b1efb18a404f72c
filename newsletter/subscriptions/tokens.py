"""Signed tokens in links to readers: unsubscribe and preferences.

They never expire, since an unsubscribe link must keep working in an old email; tampering is
detected by the signature, and the salt keeps a token valid for its own purpose only.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"


class InvalidToken(ValueError):
    """The token was altered, truncated or made for another purpose."""


@dataclass(frozen=True)
class ReaderToken:
    subscriber_id: int
    list_id: int


def _serializer(secret_key: str, purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=f"newsletter.{purpose}")


def make_token(secret_key: str, purpose: str, subscriber_id: int, list_id: int) -> str:
    return str(_serializer(secret_key, purpose).dumps([subscriber_id, list_id]))


def read_token(secret_key: str, purpose: str, token: str) -> ReaderToken:
    try:
        value = _serializer(secret_key, purpose).loads(token)
    except BadSignature:
        raise InvalidToken(
            "this link is not valid; it may have been cut short or altered"
        ) from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value)):
        raise InvalidToken("this link is not valid")
    return ReaderToken(subscriber_id=value[0], list_id=value[1])
