"""Signed link names, reader parts and UTM tags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.analytics.links import (
    link_token,
    open_token,
    read_link_token,
    read_open_token,
    with_utm,
)
from newsletter.analytics.readers import ReaderParts, read_reader
from newsletter.models import ClickTracking

KEY = "a-secret-key-for-tests"
SENT = datetime(2025, 5, 16, 7, 30, tzinfo=UTC)


def test_a_link_token_names_its_edition_and_number() -> None:
    assert read_link_token(KEY, link_token(KEY, 42, 3)) == (42, 3)


@pytest.mark.parametrize(
    "token",
    [
        "42.4." + link_token(KEY, 42, 3).split(".")[2],  # another number, the same signature
        "43.3." + link_token(KEY, 42, 3).split(".")[2],  # another edition
        link_token("another-key", 42, 3),
        link_token(KEY, 42, 3)[:-1],
        "42.3",
        "42.3.x.y",
        "-1.3." + link_token(KEY, 42, 3).split(".")[2],
        "1" * 40 + ".3.abc",
        "42.3.é" * 3,
        "",
    ],
)
def test_a_link_token_we_did_not_sign_names_nothing(token: str) -> None:
    assert read_link_token(KEY, token) is None


def test_an_open_token_is_signed_for_its_edition() -> None:
    token = open_token(KEY, 42)

    assert read_open_token(KEY, token) == 42
    assert read_open_token(KEY, "43." + token.split(".")[1]) is None


def test_an_anonymous_reader_part_names_no_reader_and_differs_per_message() -> None:
    parts = ReaderParts(KEY, 42, ClickTracking.ANONYMOUS, SENT)
    first, second = parts.part(7), parts.part(7)

    reader = read_reader(KEY, 42, first)
    assert reader is not None
    assert reader.delivery_id is None
    assert reader.sent_at == SENT.timestamp()
    assert first != second
    assert "7" not in first.split(".")[0]


def test_an_individual_reader_part_names_the_delivery() -> None:
    part = ReaderParts(KEY, 42, ClickTracking.INDIVIDUAL, SENT).part(1234)

    reader = read_reader(KEY, 42, part)
    assert reader is not None
    assert reader.delivery_id == 1234


def test_a_reader_part_is_bound_to_its_edition_and_signature() -> None:
    part = ReaderParts(KEY, 42, ClickTracking.INDIVIDUAL, SENT).part(1234)
    forged = "d1235." + part.split(".", 1)[1]

    assert read_reader(KEY, 43, part) is None
    assert read_reader(KEY, 42, forged) is None
    assert read_reader(KEY, 42, "web") is None


def test_utm_tags_are_appended() -> None:
    tagged = with_utm(
        "https://www.shortlysts.com/posts/a?x=1", source="daily", campaign="daily-2025-05-16"
    )

    assert tagged == (
        "https://www.shortlysts.com/posts/a?x=1&utm_source=daily&utm_medium=email"
        "&utm_campaign=daily-2025-05-16"
    )


def test_the_sites_own_utm_tags_are_kept() -> None:
    url = "https://www.shortlysts.com/posts/a?utm_source=site&utm_medium=social#top"

    tagged = with_utm(url, source="daily", campaign="daily-2025-05-16")

    assert tagged == (
        "https://www.shortlysts.com/posts/a?utm_source=site&utm_medium=social"
        "&utm_campaign=daily-2025-05-16#top"
    )
