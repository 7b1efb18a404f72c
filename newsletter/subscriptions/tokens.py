"""Signed tokens in links to readers: unsubscribe, preferences and confirmation.

Reader links never expire, since an unsubscribe link must keep working in an old email;
tampering is detected by the signature, and the salt keeps a token valid for its own purpose
only. Each token carries the reader's ``token_key``, a random value that dies with the
reader: a link stays with the reader it was made for even if a database hands their id to
somebody else (see :func:`newsletter.subscriptions.readers.reader_for`). Links made before
keys existed have none, and match only readers who were there before keys existed.
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
    key: str = ""


def _keyed(value: object, size: int) -> bool:
    """A token's payload: ``size`` values, then optionally the reader's key."""
    return isinstance(value, list) and (
        len(value) == size or (len(value) == size + 1 and isinstance(value[-1], str))
    )


@lru_cache(maxsize=16)
def _serializer(secret_key: str, purpose: str) -> URLSafeSerializer:
    # Built once per key and purpose: two links are signed for every recipient.
    return URLSafeSerializer(secret_key, salt=f"newsletter.{purpose}")


def make_token(secret_key: str, purpose: str, subscriber_id: int, list_id: int, key: str) -> str:
    """A reader link's token, for the reader with ``subscriber_id`` and ``token_key`` ``key``."""
    payload: list[int | str] = [subscriber_id, list_id]
    return str(_serializer(secret_key, purpose).dumps([*payload, key] if key else payload))


def read_token(secret_key: str, purpose: str, token: str) -> ReaderToken:
    try:
        value = _serializer(secret_key, purpose).loads(token)
    except BadSignature:
        raise InvalidToken(
            "this link is not valid; it may have been cut short or altered"
        ) from None
    if not (_keyed(value, 2) and all(isinstance(v, int) for v in value[:2])):
        raise InvalidToken("this link is not valid")
    key = value[2] if len(value) == 3 else ""
    return ReaderToken(subscriber_id=value[0], list_id=value[1], key=key)


CONFIRM = "confirm"


class ExpiredToken(InvalidToken):
    """The token is genuine but too old; the reader should ask for a new one."""


def _timed_serializer(secret_key: str, purpose: str, now: datetime) -> URLSafeTimedSerializer:
    """Stamps and ages tokens by the caller's clock, not the one itsdangerous would read."""

    class OnOurClock(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now.timestamp())

    return URLSafeTimedSerializer(secret_key, salt=f"newsletter.{purpose}", signer=OnOurClock)


@dataclass(frozen=True)
class ConfirmToken:
    subscriber_id: int
    list_ids: list[int]
    key: str = ""


def make_confirm_token(
    secret_key: str, subscriber_id: int, list_ids: list[int], key: str, *, now: datetime
) -> str:
    """A double opt-in link's token: which reader, which lists, when; it expires (see read)."""
    serializer = _timed_serializer(secret_key, CONFIRM, now)
    payload: list[object] = [subscriber_id, sorted(list_ids)]
    return str(serializer.dumps([*payload, key] if key else payload))


def read_confirm_token(
    secret_key: str, token: str, *, max_age_s: int, now: datetime
) -> ConfirmToken:
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
        _keyed(value, 2)
        and isinstance(value[0], int)
        and isinstance(value[1], list)
        and all(isinstance(v, int) for v in value[1])
    ):
        raise InvalidToken("this confirmation link is not valid")
    return ConfirmToken(value[0], value[1], value[2] if len(value) == 3 else "")
