"""Per-recipient messages from prepared bytes read exactly like the standard library's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from newsletter.delivery.mime_template import qp_value
from newsletter.delivery.prepared import PreparedEdition, Recipient
from newsletter.rendering.digest import DigestContext, Story, render_digest
from newsletter.rendering.placeholders import Markers
from newsletter.subscriptions.tokens import UNSUBSCRIBE, read_token
from newsletter.text import header_text
from tests.unit.delivery.test_headers import TEXTS, assert_well_folded, raw_value

SECRET = "test-secret"


def story(i: int) -> Story:
    return Story(
        title=f"Story {i}: “quotes”, é and = signs",
        url=f"https://www.shortlysts.com/posts/{i}?a=1&b=2",
        dek="A dek with trailing space " * 3,
        summary="Summary text with a very long word " + "x" * 120 + " and ünïcödé.",
        category="World",
        image_url=None,
        image_alt="",
    )


@pytest.fixture(scope="module")
def edition() -> PreparedEdition:
    context = DigestContext(
        list_name="Shortlysts Daily", language="en", edition_date=date(2025, 5, 16),
        site_name="Shortlysts", site_url="https://www.shortlysts.com",
        postal_address="1 Example St",
    )  # fmt: skip
    email, _ = render_digest(context, [story(i) for i in range(5)], budget_bytes=100_000)
    return PreparedEdition(
        edition_id=7, list_id=3, list_slug="daily", list_name="Shortlysts Daily",
        subject=email.subject, html=email.html, text=email.text, from_name="Shortlysts Ü",
        from_address="digest@shortlysts.example.com", reply_to="editor@example.com",
        domain="news.example.com", base_url="https://news.example.com", secret_key=SECRET,
        date=datetime(2025, 5, 16, 7, 0, tzinfo=UTC), markers=context.markers,
    )  # fmt: skip


def parse(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


READERS = [
    Recipient(1, 11, "ann@example.com"),
    Recipient(2, 12, "o'brien+news=daily@example.com"),
    Recipient(3, 13, "a" * 60 + "@" + "long-domain-" * 8 + "example.com"),
]


@pytest.mark.parametrize("reader", READERS, ids=["plain", "quote-plus-equals", "long"])
def test_fast_message_reads_like_the_standard_librarys(
    edition: PreparedEdition, reader: Recipient
) -> None:
    fast = parse(edition.personalise(reader).data)
    slow = parse(edition.personalise_slowly(reader).data)
    for header in ("From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id",
                   "List-Unsubscribe", "List-Unsubscribe-Post"):  # fmt: skip
        assert fast[header] == slow[header], header
    assert fast.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in fast.iter_parts()] == ["text/plain", "text/html"]
    for kind in ("plain", "html"):
        assert fast.get_body((kind,)).get_content() == slow.get_body((kind,)).get_content()


def test_every_line_ends_in_crlf_and_fits_the_limits(edition: PreparedEdition) -> None:
    data = edition.personalise(READERS[2]).data
    assert b"\n" not in data.replace(b"\r\n", b"")
    head, body = data.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "quoted-printable lines"
    assert all(byte < 128 for byte in data), "7-bit clean"


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_a_subject_and_sender_in_any_script_read_back_whole(
    edition: PreparedEdition, text: str
) -> None:
    data = replace(edition, subject=text, from_name=text).personalise(READERS[0]).data

    assert parse(data)["Subject"] == header_text(text, 900)
    assert str(make_header(decode_header(raw_value(data, "From")))) == (
        f"{header_text(text)} <digest@shortlysts.example.com>"
    )


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_headers_in_any_script_are_folded_into_short_encoded_words(
    edition: PreparedEdition, text: str
) -> None:
    prepared = replace(edition, subject=text, from_name=text, list_name=text)

    assert_well_folded(prepared.personalise(READERS[2]).data)


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_fast_headers_are_the_standard_paths_byte_for_byte(
    edition: PreparedEdition, text: str
) -> None:
    prepared = replace(edition, subject=text, from_name=text, list_name=text)

    def head(data: bytes) -> list[bytes]:
        return data.split(b"\r\n\r\n", 1)[0].split(b"boundary=")[0].split(b"\r\n")

    fast = head(prepared.personalise(READERS[2]).data)
    assert fast == head(prepared.personalise_slowly(READERS[2]).data)


def test_unsubscribe_link_is_the_readers_own(edition: PreparedEdition) -> None:
    message = parse(edition.personalise(READERS[0]).data)
    url = message["List-Unsubscribe"].split(",")[0].strip("<> ")
    token = read_token(SECRET, UNSUBSCRIBE, url.rsplit("/", 1)[1])
    assert (token.subscriber_id, token.list_id) == (11, 3)
    assert url in message.get_body(("html",)).get_content()


def test_internationalised_address_takes_the_standard_path(edition: PreparedEdition) -> None:
    reader = Recipient(4, 14, "jörg@bücher.example")
    message = parse(edition.personalise(reader).data)
    assert "jörg@bücher.example" in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    "value",
    [
        "short",
        "x" * 75,
        "x" * 76,
        "y" * 300,
        "a=b c\\u00e9 ",
        "ünï " * 40,
        ".dot",
        "z" * 72 + "." * 9,
    ],
)
def test_slot_values_decode_to_themselves(value: str) -> None:
    import quopri

    encoded = qp_value(value)
    assert all(len(line) <= 76 for line in encoded.split("\r\n"))
    assert quopri.decodestring(encoded.encode() + b"=\r\n").decode("utf-8") == value


def test_no_line_starts_with_a_dot_so_smtp_needs_no_stuffing() -> None:
    lines = ".leading dot\n" + "\n".join("." * n + " after" for n in range(1, 90))
    prepared = PreparedEdition(
        edition_id=1, list_id=1, list_slug="d", list_name="D", subject="s",
        html="<p>x</p>\n" + lines, text=lines, from_name="F", from_address="f@example.com",
        reply_to=None, domain="example.com", base_url="https://example.com/" + "." * 80,
        secret_key=SECRET, date=datetime(2025, 5, 16, tzinfo=UTC), markers=Markers(""),
    )  # fmt: skip
    data = prepared.personalise(Recipient(1, 1, "ann@example.com")).data
    assert not any(line.startswith(b".") for line in data.split(b"\r\n"))
    assert (
        parse(data).get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == lines
    )
