"""Signed unsubscribe and preference tokens."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeSerializer

from newsletter.subscriptions.tokens import (
    PREFERENCES,
    UNSUBSCRIBE,
    InvalidToken,
    ReaderToken,
    make_token,
    read_token,
)

SECRET = "a-long-random-test-secret"


@pytest.fixture
def token() -> str:
    return make_token(SECRET, UNSUBSCRIBE, 42, 7, "key")


def test_token_round_trips(token: str) -> None:
    assert read_token(SECRET, UNSUBSCRIBE, token) == ReaderToken(
        subscriber_id=42, list_id=7, key="key"
    )


def test_preferences_token_round_trips() -> None:
    token = make_token(SECRET, PREFERENCES, 1, 2, "key")
    assert read_token(SECRET, PREFERENCES, token) == ReaderToken(
        subscriber_id=1, list_id=2, key="key"
    )


def test_token_is_safe_in_a_url_path(token: str) -> None:
    assert all(c.isalnum() or c in "-_." for c in token)


def test_token_is_the_same_every_time(token: str) -> None:
    assert make_token(SECRET, UNSUBSCRIBE, 42, 7, "key") == token


def test_tokens_differ_per_reader_and_per_list(token: str) -> None:
    assert make_token(SECRET, UNSUBSCRIBE, 43, 7, "key") != token
    assert make_token(SECRET, UNSUBSCRIBE, 42, 8, "key") != token


def test_tampered_signature_is_refused(token: str) -> None:
    payload, signature = token.rsplit(".", 1)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(InvalidToken, match="not valid"):
        read_token(SECRET, UNSUBSCRIBE, f"{payload}.{flipped}")


def test_tampered_payload_is_refused(token: str) -> None:
    other = make_token(SECRET, UNSUBSCRIBE, 1, 7, "key")
    forged = other.rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]
    with pytest.raises(InvalidToken):
        read_token(SECRET, UNSUBSCRIBE, forged)


def test_truncated_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken, match="cut short or altered"):
        read_token(SECRET, UNSUBSCRIBE, token[:-3])


def test_token_for_another_purpose_is_refused() -> None:
    preferences = make_token(SECRET, PREFERENCES, 42, 7, "key")
    with pytest.raises(InvalidToken):
        read_token(SECRET, UNSUBSCRIBE, preferences)


def test_token_signed_with_another_secret_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        read_token("another-secret", UNSUBSCRIBE, token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "é", "../../etc/passwd"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(SECRET, UNSUBSCRIBE, garbage)


@pytest.mark.parametrize("payload", [[1], [1, "2"], {"a": 1}, "text", [1, 2, 3]])
def test_signed_token_of_the_wrong_shape_is_refused(payload: object) -> None:
    signed = URLSafeSerializer(SECRET, salt=f"newsletter.{UNSUBSCRIBE}").dumps(payload)
    with pytest.raises(InvalidToken, match="not valid"):
        read_token(SECRET, UNSUBSCRIBE, signed)
