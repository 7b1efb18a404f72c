"""Signed tokens in links to readers: unsubscribe and preferences.

They never expire, since an unsubscribe link must keep working in an old email; tampering is
detected by the signature, and the salt keeps a token valid for its own purpose only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)

UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"


class InvalidToken(ValueError):
    """The token was altered, truncated or made for another purpose."""


@dataclass(frozen=True)
class ReaderToken:
    subscriber_id: int
    list_id: int


@lru_cache(maxsize=16)
def _serializer(secret_key: str, purpose: str) -> URLSafeSerializer:
    # Built once per key and purpose: two links are signed for every recipient.
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


CONFIRM = "confirm"


class ExpiredToken(InvalidToken):
    """The token is genuine but too old; the reader should ask for a new one."""


def _timed_serializer(secret_key: str, purpose: str, now: datetime) -> URLSafeTimedSerializer:
    """Stamps and ages tokens by the caller's clock, not the one itsdangerous would read."""

    class OnOurClock(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now.timestamp())

    return URLSafeTimedSerializer(secret_key, salt=f"newsletter.{purpose}", signer=OnOurClock)


def make_confirm_token(
    secret_key: str, subscriber_id: int, list_ids: list[int], *, now: datetime
) -> str:
    """A double opt-in link's token: which reader, which lists, when; it expires (see read)."""
    serializer = _timed_serializer(secret_key, CONFIRM, now)
    return str(serializer.dumps([subscriber_id, sorted(list_ids)]))


def read_confirm_token(
    secret_key: str, token: str, *, max_age_s: int, now: datetime
) -> tuple[int, list[int]]:
    try:
        value = _timed_serializer(secret_key, CONFIRM, now).loads(token, max_age=max_age_s)
    except SignatureExpired:
        raise ExpiredToken(
            "this confirmation link has expired; please sign up again to get a new one"
        ) from None
    except BadSignature:
        raise InvalidToken(
            "this confirmation link is not valid; it may have been cut short"
        ) from None
    if not (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and isinstance(value[1], list)
        and all(isinstance(v, int) for v in value[1])
    ):
        raise InvalidToken("this confirmation link is not valid")
    return value[0], value[1]
