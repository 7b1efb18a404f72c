"""Header lines: text beyond ASCII in encoded words of at most 75 characters, folded lines,
and ASCII values (URLs, ids, slot markers) never encoded."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.delivery.headers import HEADERS, encoded_words, folded_value
from newsletter.text import header_text

ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")

TEXTS = {
    "arabic": "عاجل: الأمطار الغزيرة تغمر المدن الساحلية وتقطع الطرق الرئيسية في شمال البلاد"
    " وجنوبها، والسلطات تدعو السكان إلى البقاء في منازلهم حتى صباح الغد.",
    "emoji": "⚠️ Storm warning ❤️ 👨\u200d👩\u200d👧 family 🇫🇷🇯🇵 flags 🌧️🌧️🌧️🌧️🌧️🌧️🌧️🌧️"
    " and 👩🏽\u200d💻 at work, 😀😃😄😁😆😅😂🤣🥲☺️😊😇🙂🙃😉😌😍🥰😘",
    "cjk": "東京都心で記録的な大雨、交通機関に大きな乱れ。気象庁は引き続き土砂災害や河川の増水に"
    "警戒するよう呼びかけています。明日の朝まで雨が続く見込みです。",
    "latin": "Élections régionales : les résultats définitifs à Besançon, Saint-Étienne,"
    " Aix-en-Provence et Orléans, commune par commune, avec la participation détaillée",
}


def generated(**headers: str | Address) -> bytes:
    message = EmailMessage(policy=policy.SMTP)
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("body")
    return message.as_bytes(policy=HEADERS)


def head_lines(data: bytes) -> list[str]:
    return data.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")


def parsed(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def raw_value(data: bytes, name: str) -> str:
    """A header's value as sent, unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ")
    [line] = [line for line in head.split("\r\n") if line.lower().startswith(name.lower() + ":")]
    return line.split(":", 1)[1].strip()


def assert_well_folded(data: bytes) -> None:
    """Encoded words of at most 75 characters; lines of at most 76 columns, save one holding
    a single ASCII word too long for any line."""
    for line in head_lines(data):
        assert all(len(word) <= 75 for word in ENCODED_WORD.findall(line)), line
        assert len(line) <= 76 or (len(line.split()) <= 2 and "=?" not in line), line
        assert len(line) <= 998


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_a_long_subject_reads_back_whole(text: str) -> None:
    data = generated(Subject=text)

    assert parsed(data)["Subject"] == text


@pytest.mark.parametrize("header", ["Subject", "From"])
@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_a_long_header_is_folded_into_short_encoded_words(header: str, text: str) -> None:
    value = text if header == "Subject" else Address(text, addr_spec="digest@example.com")
    data = generated(**{header: value})

    assert len(ENCODED_WORD.findall("".join(head_lines(data)))) > 1
    assert_well_folded(data)


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_a_long_display_name_reads_back_whole(text: str) -> None:
    # Decoded as RFC 2047 (6.2) says: Python 3.11's address parser keeps the white space
    # between two encoded words of a display name (CPython gh-128110).
    data = generated(From=Address(display_name=text, addr_spec="digest@example.com"))

    assert str(make_header(decode_header(raw_value(data, "From")))) == (
        f"{text} <digest@example.com>"
    )
    assert parsed(data)["From"].addresses[0].addr_spec == "digest@example.com"


def test_a_display_name_with_commas_and_quotes_stays_one_mailbox() -> None:
    name = 'Shortlysts, "Ü" (daily) <news>'
    data = generated(From=Address(display_name=name, addr_spec="digest@example.com"))

    [address] = parsed(data)["From"].addresses
    assert (address.display_name, address.addr_spec) == (name, "digest@example.com")


def test_a_long_list_unsubscribe_is_folded_at_its_comma_and_not_encoded() -> None:
    url = "https://news.example.com/unsubscribe/" + "WzEzLDMsImsiXQ" * 8
    value = f"<{url}>, <mailto:unsubscribe@news.example.com?subject=unsubscribe%20{'x' * 90}>"
    data = generated(List_Unsubscribe=value)

    assert "=?" not in data.decode("ascii")
    assert raw_value(data, "List-Unsubscribe") == value
    assert f"List-Unsubscribe: <{url}>," in head_lines(data)


def test_a_long_message_id_stays_whole_on_its_line() -> None:
    message_id = f"<{'1234567890.' * 9}abcdef@news.example.com>"
    data = generated(Message_ID=message_id)

    assert f"Message-ID: {message_id}" in head_lines(data)


def test_ascii_words_beside_encoded_ones_stay_as_they_are() -> None:
    data = generated(Subject="Weekly digest: Café au lait <daily.example.com>")

    assert raw_value(data, "Subject").endswith(" au lait <daily.example.com>")
    assert parsed(data)["Subject"] == "Weekly digest: Café au lait <daily.example.com>"


EMOJI = {
    "family": "👨\u200d👩\u200d👧\u200d👦",
    "flag": "🇫🇷",
    "skin-tone": "👩🏽\u200d💻",
    "keycap": "1\ufe0f\u20e3",
    "accent": "e\u0301",
}


@pytest.mark.parametrize("emoji", EMOJI.values(), ids=EMOJI.keys())
def test_an_emoji_sequence_is_not_cut_between_encoded_words(emoji: str) -> None:
    words = encoded_words(emoji * 12, first=40)

    decoded = [str(make_header(decode_header(word))) for word in words if word]
    assert len(decoded) > 1
    assert all(part and set(part.split(emoji)) == {""} for part in decoded)


def test_an_encoded_word_ends_after_a_space_where_one_allows() -> None:
    words = encoded_words("ünïcödé " * 12, first=60)

    decoded = [str(make_header(decode_header(word))) for word in words]
    assert all(part.endswith(" ") for part in decoded[:-1])


def test_nothing_fits_a_line_too_short_for_one_encoded_word() -> None:
    assert encoded_words("ü" * 10, first=10)[0] == ""


def test_a_slot_value_is_folded_as_the_generator_folds_it() -> None:
    value = f"<https://example.com/u/{'t' * 70}>, <mailto:u@example.com?subject=u%20{'t' * 70}>"

    assert f"List-Unsubscribe: {folded_value('List-Unsubscribe', value)}" in (
        "\r\n".join(head_lines(generated(List_Unsubscribe=value)))
    )


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=300))
def test_any_subject_reads_back_whole_in_short_encoded_words(text: str) -> None:
    subject = header_text(text, 900)
    data = generated(Subject=subject)

    assert parsed(data)["Subject"] == subject
    assert_well_folded(data)
