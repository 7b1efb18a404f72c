"""Digests' Message-IDs: each names and signs its delivery, with a random part per edition."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from newsletter.delivery.message_ids import delivery_of_message_id, for_edition
from newsletter.delivery.prepared import PreparedEdition, Recipient
from newsletter.rendering.placeholders import Markers, new_key

SECRET = "test-secret"
DOMAIN = "news.example.com"


def prepared(marker_key: str, *, secret_key: str = SECRET) -> PreparedEdition:
    """Edition 1 of list 1, rendered with ``marker_key``."""
    return PreparedEdition(
        edition_id=1, list_id=1, list_slug="d", list_name="D", subject="s", html="<p>x</p>",
        text="x", from_name="F", from_address="f@example.com", reply_to=None, domain=DOMAIN,
        base_url="https://news.example.com", secret_key=secret_key,
        date=datetime(2025, 5, 16, tzinfo=UTC), markers=Markers(marker_key),
    )  # fmt: skip


def test_a_message_id_reads_back_as_its_delivery() -> None:
    message_id = for_edition(SECRET, 7, new_key(), DOMAIN)(42)

    assert delivery_of_message_id(SECRET, message_id) == (7, 42)


def test_two_installations_with_one_secret_make_different_message_ids_for_the_same_ids() -> None:
    ours, theirs = prepared(new_key()), prepared(new_key())

    assert ours.message_id(1) != theirs.message_id(1)


def test_an_edition_prepared_again_keeps_its_message_ids() -> None:
    key = new_key()

    assert prepared(key).message_id(5) == prepared(key).message_id(5)


def test_a_readers_message_carries_their_message_id() -> None:
    edition = prepared(new_key())

    message = edition.personalise(Recipient(3, 9, "ann@example.com"))

    assert f"\r\nMessage-ID: {message.message_id}\r\n".encode() in message.data
    assert delivery_of_message_id(SECRET, message.message_id) == (1, 3)


def _changed(text: str, at: int) -> str:
    return text[:at] + ("2" if text[at] != "2" else "3") + text[at + 1 :]


TAMPERED: dict[str, Callable[[str], str]] = {
    "another-edition": lambda local: "8" + local[1:],
    "another-part": lambda local: _changed(local, 2),
    "another-delivery": lambda local: local.replace(".42.", ".43."),
    "another-signature": lambda local: _changed(local, len(local) - 1),
    "cut-signature": lambda local: local[:-1],
    "no-part": lambda local: local.split(".", 2)[0] + "." + local.split(".", 2)[2],
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_message_id_names_no_delivery(tamper: Callable[[str], str]) -> None:
    local = for_edition(SECRET, 7, new_key(), DOMAIN)(42).strip("<>").split("@")[0]

    assert delivery_of_message_id(SECRET, f"<{tamper(local)}@{DOMAIN}>") is None


def test_another_installations_message_id_names_no_delivery() -> None:
    message_id = prepared(new_key(), secret_key="another-secret").message_id(1)

    assert delivery_of_message_id(SECRET, message_id) is None


def test_a_message_id_sent_before_the_random_part_still_reads_back() -> None:
    tag = hmac.new(SECRET.encode(), b"7.42", hashlib.sha256).hexdigest()[:12]

    assert delivery_of_message_id(SECRET, f"<7.42.{tag}@{DOMAIN}>") == (7, 42)


def test_an_edition_rendered_before_marker_keys_keeps_its_message_ids() -> None:
    tag = hmac.new(SECRET.encode(), b"1.5", hashlib.sha256).hexdigest()[:12]

    assert prepared("").message_id(5) == f"<1.5.{tag}@{DOMAIN}>"


@pytest.mark.parametrize(
    "message_id",
    ["<\u00b21.3.abcdef012345@example.com>", "<1.3.abcdéf012345@example.com>",
     "<1.abcdéfghij.3.abcdef012345@example.com>"],
)  # fmt: skip
def test_a_message_id_with_characters_beyond_ascii_names_no_delivery(message_id: str) -> None:
    assert delivery_of_message_id("secret", message_id) is None
