"""Which way a text and a language run."""

from __future__ import annotations

import pytest

from newsletter.text import language_direction, text_direction


@pytest.mark.parametrize(
    ("text", "direction"),
    [
        ("Storm warning", "ltr"),
        ("انقطاع الكهرباء.", "rtl"),
        ("שלום עולם", "rtl"),
        ("2025: انتخابات", "rtl"),  # digits are weak: the first letter decides
        ("⚠️ Storm", "ltr"),
        ("\u202eevil", "ltr"),  # a bidi control is not a letter
    ],
)
def test_a_text_runs_the_way_its_first_letter_does(text: str, direction: str) -> None:
    assert text_direction(text) == direction


def test_a_text_without_letters_takes_the_default() -> None:
    assert text_direction("🎉 2025", default="rtl") == "rtl"


@pytest.mark.parametrize(
    ("language", "direction"),
    [
        ("ar", "rtl"),
        ("he-IL", "rtl"),
        ("fa_IR", "rtl"),
        ("en", "ltr"),
        ("en-GB", "ltr"),
        ("", "ltr"),
    ],
)
def test_a_language_has_a_direction(language: str, direction: str) -> None:
    assert language_direction(language) == direction
