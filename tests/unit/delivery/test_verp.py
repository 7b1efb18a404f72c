"""VERP return paths: every message's envelope sender names, and signs, whose it was."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery import notices
from newsletter.delivery.prepared import PreparedEdition, Recipient
from newsletter.delivery.verp import DIGEST, NOTICE, ReturnPath, Tag, make_tag, read_tag
from newsletter.models import NewsletterList
from newsletter.rendering.digest import DigestContext, Story, render_digest
from newsletter.subscriptions.service import Signup, find_subscriber, import_subscribers

SECRET = "test-secret"
BOUNCES = ReturnPath("bounces", "mail.example.com", SECRET)
A_DIGEST = Tag(DIGEST, subscriber_id=12345, edition_id=678)


@pytest.mark.parametrize(
    "tag", [A_DIGEST, Tag(NOTICE, subscriber_id=12345)], ids=["digest", "notice"]
)
def test_a_tag_reads_back_as_what_it_names(tag: Tag) -> None:
    assert read_tag(SECRET, make_tag(SECRET, tag)) == tag


def _changed(text: str, at: int) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


TAMPERED: dict[str, Callable[[str], str]] = {
    "another-edition": lambda tag: _changed(tag, 1),
    "another-signature": lambda tag: _changed(tag, len(tag) - 1),
    "truncated": lambda tag: tag[:-1],
    "signature-only": lambda tag: tag.rpartition("-")[2],
    "payload-only": lambda tag: tag.rpartition("-")[0],
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_tag_does_not_verify(tamper: Callable[[str], str]) -> None:
    assert read_tag(SECRET, tamper(make_tag(SECRET, A_DIGEST))) is None


def test_a_tag_made_with_another_secret_does_not_verify() -> None:
    assert read_tag(SECRET, make_tag("another-secret", A_DIGEST)) is None


def test_a_tag_whose_case_a_server_folded_still_verifies() -> None:
    assert read_tag(SECRET, make_tag(SECRET, A_DIGEST).upper()) == A_DIGEST


def test_the_address_of_the_largest_ids_fits_a_local_part() -> None:
    largest = Tag(DIGEST, subscriber_id=2**63 - 1, edition_id=2**63 - 1)
    local = BOUNCES.address(largest).rpartition("@")[0]
    assert len(local.encode()) <= 64
    assert BOUNCES.tag_of(BOUNCES.address(largest)) == largest


@pytest.mark.parametrize(
    "address",
    [
        "bounces@mail.example.com",
        "<bounces@mail.example.com>",
        "Bounces@Mail.Example.com",
        "bounces+anything@mail.example.com",
        BOUNCES.address(A_DIGEST),
    ],
)
def test_the_return_path_owns_its_address_and_every_tagged_form(address: str) -> None:
    assert BOUNCES.owns(address)


@pytest.mark.parametrize(
    "address",
    [
        "bounce@mail.example.com",
        "bouncesx+tag@mail.example.com",
        "digest@mail.example.com",
        "bounces@example.com",
        "bounces@sub.mail.example.com",
        "bounces+tag@mail.example.com.evil.test",
    ],
)
def test_the_return_path_refuses_other_addresses(address: str) -> None:
    assert not BOUNCES.owns(address)


@pytest.fixture(scope="module")
def edition() -> PreparedEdition:
    context = DigestContext(
        list_name="Shortlysts Daily", language="en", edition_date=date(2025, 5, 16),
        site_name="Shortlysts", site_url="https://www.shortlysts.com",
        postal_address="1 Example St",
    )  # fmt: skip
    story = Story(
        title="A story", url="https://www.shortlysts.com/posts/1", dek="A dek.",
        summary="A summary.", category="World", image_url=None, image_alt="",
    )  # fmt: skip
    email, _ = render_digest(context, [story], budget_bytes=100_000)
    return PreparedEdition(
        edition_id=7, list_id=3, list_slug="daily", list_name="Shortlysts Daily",
        subject=email.subject, html=email.html, text=email.text, from_name="Shortlysts",
        from_address="digest@shortlysts.example.com", reply_to=None,
        domain="news.example.com", base_url="https://news.example.com", secret_key=SECRET,
        date=datetime(2025, 5, 16, 7, 0, tzinfo=UTC), markers=context.markers,
        return_path=BOUNCES,
    )  # fmt: skip


ANN = Recipient(delivery_id=1, subscriber_id=11, email="ann@example.com")
BOB = Recipient(delivery_id=2, subscriber_id=12, email="bob@example.com")


def test_each_reader_gets_an_envelope_sender_naming_their_edition_and_themselves(
    edition: PreparedEdition,
) -> None:
    ann, bob = edition.personalise(ANN).sender, edition.personalise(BOB).sender
    assert ann != bob
    assert BOUNCES.tag_of(ann) == Tag(DIGEST, subscriber_id=11, edition_id=7)
    assert BOUNCES.tag_of(bob) == Tag(DIGEST, subscriber_id=12, edition_id=7)


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(
    edition: PreparedEdition,
) -> None:
    plain = replace(edition, return_path=None)
    assert plain.personalise(ANN).sender == "digest@shortlysts.example.com"


def test_the_fast_and_the_slow_path_give_the_same_envelope_sender(
    edition: PreparedEdition,
) -> None:
    assert edition.personalise(ANN).sender == edition.personalise_slowly(ANN).sender


def test_a_notice_has_an_envelope_sender_with_a_notice_tag(
    session: Session, daily_list: NewsletterList, settings: Settings, now: datetime
) -> None:
    import_subscribers(session, daily_list, [Signup("ann@example.com")], now=now, source="test")
    reader = find_subscriber(session, "ann@example.com")
    assert reader is not None
    with_bounces = settings.model_copy(update={"bounce_address": "bounces@mail.example.com"})

    notice = notices.welcome(session, reader.id, [daily_list.id], settings=with_bounces, now=now)

    assert notice is not None
    return_path = ReturnPath.parse("bounces@mail.example.com", settings.secret_key)
    assert return_path is not None
    assert return_path.tag_of(notice.sender) == Tag(NOTICE, subscriber_id=reader.id)


def test_a_bounce_address_with_a_plus_of_its_own_reads_its_tags() -> None:
    return_path = ReturnPath.parse("bounces+news@mail.example.com", "secret")
    assert return_path is not None
    address = return_path.address(Tag(DIGEST, 7, 3))
    assert address.startswith("bounces+news+d3-7-")
    assert return_path.tag_of(address) == Tag(DIGEST, 7, 3)
    assert not return_path.owns("bounces@mail.example.com")


@pytest.mark.parametrize("tag", ["d1-2-abcdéfghij", "d1-2-\u00b2bcdefghij", "n\u0661-abcdefghij"])
def test_a_tag_with_characters_beyond_ascii_reads_as_no_tag(tag: str) -> None:
    assert read_tag("secret", tag) is None
