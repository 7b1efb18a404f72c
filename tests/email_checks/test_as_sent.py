"""What issue 13 asks of every message the demo sends, checked on the bytes as sent: pixel
widths on images, encoded words of at most 75 characters, a ``color-scheme`` meta, and an
HTML part under Gmail's clipping size."""

from __future__ import annotations

import re

import pytest

from newsletter.rendering.digest import GMAIL_CLIP_BYTES
from tests.sent_messages import MESSAGES, SentMessage, body_parts

_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def html_part_as_sent(data: bytes) -> bytes:
    """The HTML part's body, still quoted-printable, as the client downloads it."""
    part = data.split(b"Content-Type: text/html", 1)[1]
    return part.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]


@pytest.mark.parametrize("name", MESSAGES)
def test_encoded_words_are_at_most_75_characters(name: str, sent: dict[str, SentMessage]) -> None:
    words = _ENCODED_WORD.findall(header_block(sent[name].data))

    assert [w for w in words if len(w) > 75] == []


@pytest.mark.parametrize("name", MESSAGES)
def test_header_lines_are_folded(name: str, sent: dict[str, SentMessage]) -> None:
    lines = header_block(sent[name].data).split(b"\r\n")

    assert max(len(line) for line in lines) <= 998
    assert [line for line in lines if len(line) > 78 and b"=?" in line] == []


@pytest.mark.parametrize("name", MESSAGES)
def test_every_image_has_a_pixel_width(name: str, sent: dict[str, SentMessage]) -> None:
    images = re.findall(r"<img\b[^>]*>", body_parts(sent[name].data)["text/html"])

    assert [i for i in images if not re.search(r'\swidth="\d+"', i)] == []


def test_the_demo_digest_has_images_at_their_columns_width(
    sent: dict[str, SentMessage],
) -> None:
    html = body_parts(sent["demo digest"].data)["text/html"]

    assert re.findall(r'<img\b[^>]*\swidth="(\d+)"', html)
    assert set(re.findall(r'<img\b[^>]*\swidth="(\d+)"', html)) == {"552"}


@pytest.mark.parametrize("name", MESSAGES)
def test_every_message_declares_its_colour_schemes(name: str, sent: dict[str, SentMessage]) -> None:
    html = body_parts(sent[name].data)["text/html"]

    assert '<meta name="color-scheme" content="light dark">' in html


@pytest.mark.parametrize("name", MESSAGES)
def test_the_html_as_sent_is_under_gmails_clip(name: str, sent: dict[str, SentMessage]) -> None:
    assert len(html_part_as_sent(sent[name].data)) < GMAIL_CLIP_BYTES
