"""The dashboard's Today column: "Prepare today's edition" while a list has no edition for
today (on its own clock), and once it has one, where that edition stands, with a link."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.lifecycle import start_sending
from newsletter.lists.schedule import local_date
from newsletter.models import Edition, EditionStatus, NewsletterList
from tests.factories import edition_with_readers
from tests.web.conftest import AdminClient, visible_text

PREPARE = "Prepare today's edition"


def today_cell(page: str) -> str:
    """The text of the lists table's Today cell for the one list."""
    table = re.search(r'<table aria-labelledby="lists">.*?</table>', page, re.S)
    assert table, "the dashboard has no lists table"
    cells = re.findall(r"<td>(.*?)</td>", table.group(0), re.S)
    return visible_text(f"<main>{cells[-1]}</main>")


def prepared(session: Session, nl: NewsletterList, now: datetime, settings: Settings) -> Edition:
    """Today's edition of ``nl`` as the dashboard's button would build it at ``now``: with
    three posts and a reader."""
    edition = edition_with_readers(session, nl, ["ada@example.com"], now=now, settings=settings)
    assert edition.edition_date == local_date(nl.timezone, now)
    return edition


def test_a_list_without_an_edition_today_is_offered_one(
    admin: AdminClient, daily_list: NewsletterList
) -> None:
    assert today_cell(admin.get("/admin").text) == PREPARE


def test_todays_sent_edition_says_when_it_went_and_links_to_it(
    admin: AdminClient, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    edition = prepared(session, daily_list, now, settings)
    start_sending(session, edition.id, now=now - timedelta(minutes=20))
    edition.status, edition.sent_at = EditionStatus.SENT, now - timedelta(minutes=19)
    session.commit()

    page = admin.get("/admin").text

    assert today_cell(page) == "Today's edition was sent at 07:11 UTC."
    assert f'<a href="/admin/editions/{edition.id}"' in page
    assert PREPARE not in visible_text(page)


def test_todays_draft_is_linked_instead_of_prepared_again(
    admin: AdminClient, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    edition = prepared(session, daily_list, now, settings)
    edition.status = EditionStatus.DRAFT
    session.commit()

    assert (
        today_cell(admin.get("/admin").text) == "Today's edition is a draft, waiting for an editor."
    )


def test_yesterdays_edition_does_not_count_as_todays(
    admin: AdminClient, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    prepared(session, daily_list, now - timedelta(days=1), settings)

    assert today_cell(admin.get("/admin").text) == PREPARE


def test_today_is_the_date_on_the_lists_own_clock(
    admin: AdminClient, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    """At 07:30 UTC on the 16th it is still the 15th in Pago Pago (UTC-11): an edition
    dated the 16th is not today's there."""
    prepared(session, daily_list, now, settings)
    daily_list.timezone = "Pacific/Pago_Pago"
    session.commit()

    assert today_cell(admin.get("/admin").text) == PREPARE
