"""Late posts are never lost (issue 10, finding 10).

A post that passes a list's filters goes into exactly one of the list's editions: the one
whose window it was published in if that edition has not gone yet, else the next one built,
as long as it was published at most ``late_post_lookback_hours`` before the cutoff it missed.
Late means seen after the edition it belonged to was built: a feed that lagged past the
list's time, or an import of older posts after an editor prepared the day's edition.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions import service
from newsletter.editions.build import ordered_items
from newsletter.editions.dispatch import dispatch_due
from newsletter.editions.lifecycle import start_sending
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import Edition, EditionStatus, Frequency, NewsletterList
from newsletter.posts.ingest import upsert_posts
from tests.factories import post


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


MAY_16, MAY_17 = date(2025, 5, 16), date(2025, 5, 17)


def make_list(
    session: Session, slug: str, *, categories: list[str] | None = None, approval: bool = False
) -> NewsletterList:
    """A list sending at 07:00 UTC, without readers: a send finishes as soon as it starts."""
    nl = create_list(
        session,
        ListSpec(slug=slug, name=slug.title(), from_address="digest@example.com",
                 schedule="0 7 * * *", timezone="UTC"),
    )  # fmt: skip
    nl.categories = categories or []
    nl.requires_approval = approval
    nl.max_posts = 100
    session.commit()
    return nl


@pytest.fixture
def morning(session: Session) -> NewsletterList:
    return make_list(session, "morning")


def run_dispatcher(session: Session, settings: Settings, now: datetime) -> None:
    """One run of beat's task: what is due goes out."""
    for edition_id in dispatch_due(session, now=now, settings=settings):
        start_sending(session, edition_id, now=now)
    session.commit()
    session.expire_all()


def publish(session: Session, number: int, published: datetime, category: str = "World") -> None:
    upsert_posts(session, [post(number, published, category=category)])
    session.commit()


def editions_of(session: Session, nl: NewsletterList) -> dict[date, Edition]:
    session.expire_all()
    found = session.scalars(
        select(Edition).where(Edition.list_id == nl.id, Edition.frequency == Frequency.DAILY)
    )
    return {edition.edition_date: edition for edition in found}


def titles(edition: Edition) -> list[str]:
    return [item.post.title for item in ordered_items(edition)]


def placements(session: Session, nl: NewsletterList) -> dict[str, list[date]]:
    """Each post's editions of the list (those that reach readers), by title."""
    placed: dict[str, list[date]] = {}
    for day, edition in sorted(editions_of(session, nl).items()):
        if edition.status in (EditionStatus.MISSED, EditionStatus.CANCELLED):
            continue
        for title in titles(edition):
            placed.setdefault(title, []).append(day)
    return placed


# --- The two ways a post came late ---------------------------------------------------------


def test_a_post_published_before_the_cutoff_but_seen_after_it_goes_in_the_next_edition(
    session: Session, settings: Settings, morning: NewsletterList
) -> None:
    publish(session, 1, at("2025-05-16 05:00"))
    run_dispatcher(session, settings, at("2025-05-16 07:00"))
    # Published at 06:55, first seen at 07:05: the 07:00 edition has already gone.
    publish(session, 2, at("2025-05-16 06:55"))
    run_dispatcher(session, settings, at("2025-05-16 07:10"))
    publish(session, 3, at("2025-05-17 06:00"))

    run_dispatcher(session, settings, at("2025-05-17 07:00"))

    editions = editions_of(session, morning)
    assert editions[MAY_16].status == EditionStatus.SENT
    assert titles(editions[MAY_16]) == ["Story number 1"]
    assert titles(editions[MAY_17]) == ["Story number 3", "Story number 2"]


def test_refresh_of_an_unsent_edition_takes_a_late_post(
    session: Session, settings: Settings
) -> None:
    approved = make_list(session, "approved", approval=True)
    publish(session, 1, at("2025-05-16 05:00"))
    run_dispatcher(session, settings, at("2025-05-16 07:00"))  # a draft, for an editor
    publish(session, 2, at("2025-05-16 06:55"))  # seen at 07:05
    draft = editions_of(session, approved)[MAY_16]

    added = service.refresh_posts(session, draft, now=at("2025-05-16 07:06"), settings=settings)
    session.commit()

    assert added == 1
    assert titles(editions_of(session, approved)[MAY_16]) == ["Story number 2", "Story number 1"]
    assert "Story number 2" in editions_of(session, approved)[MAY_16].html


IMPORTED = [f"Story number {n}" for n in range(1, 5)]


def import_older_posts(session: Session) -> None:
    """At 05:05, an import of posts dated one to four hours back."""
    for hours in range(1, 5):
        publish(session, hours, at("2025-05-16 05:05") - timedelta(hours=hours))


def test_posts_imported_after_an_early_prepare_are_found_by_refresh(
    session: Session, settings: Settings, morning: NewsletterList
) -> None:
    # "Prepare today's edition" at 05:00 finds nothing: the day is skipped, for now.
    prepared = service.todays_edition(
        session, morning, now=at("2025-05-16 05:00"), settings=settings
    ).edition
    session.commit()
    assert prepared.status == EditionStatus.SKIPPED
    import_older_posts(session)

    added = service.refresh_posts(session, prepared, now=at("2025-05-16 05:10"), settings=settings)
    session.commit()

    assert added == 4
    edition = editions_of(session, morning)[MAY_16]
    assert edition.status == EditionStatus.DRAFT
    assert titles(edition) == IMPORTED


def test_without_a_refresh_the_dispatcher_takes_them_at_the_lists_time(
    session: Session, settings: Settings, morning: NewsletterList
) -> None:
    service.todays_edition(session, morning, now=at("2025-05-16 05:00"), settings=settings)
    session.commit()
    import_older_posts(session)

    run_dispatcher(session, settings, at("2025-05-16 07:00"))

    edition = editions_of(session, morning)[MAY_16]
    assert edition.status == EditionStatus.SENT
    assert titles(edition) == IMPORTED


def test_posts_that_come_after_a_skipped_day_went_by_go_into_the_next_edition(
    session: Session, settings: Settings, morning: NewsletterList
) -> None:
    run_dispatcher(session, settings, at("2025-05-16 07:00"))  # nothing yet: skipped
    publish(session, 1, at("2025-05-16 05:00"))  # imported at 09:00
    publish(session, 2, at("2025-05-16 06:30"))

    run_dispatcher(session, settings, at("2025-05-17 07:00"))

    editions = editions_of(session, morning)
    assert editions[MAY_16].status == EditionStatus.SKIPPED
    assert editions[MAY_17].status == EditionStatus.SENT
    assert titles(editions[MAY_17]) == ["Story number 2", "Story number 1"]


def test_a_late_post_older_than_the_lookback_is_left_out(
    session: Session, settings: Settings, morning: NewsletterList
) -> None:
    lookback = timedelta(hours=settings.late_post_lookback_hours)
    publish(session, 1, at("2025-05-16 05:00"))
    run_dispatcher(session, settings, at("2025-05-16 07:00"))
    publish(session, 2, at("2025-05-16 07:00") - lookback + timedelta(minutes=1))
    publish(session, 3, at("2025-05-16 07:00") - lookback - timedelta(minutes=1))

    run_dispatcher(session, settings, at("2025-05-17 07:00"))

    assert titles(editions_of(session, morning)[MAY_17]) == ["Story number 2"]


def test_a_post_an_editor_removed_stays_out_of_refresh_and_of_later_editions(
    session: Session, settings: Settings, morning: NewsletterList
) -> None:
    publish(session, 1, at("2025-05-16 03:00"))
    publish(session, 2, at("2025-05-16 04:00"))
    draft = service.todays_edition(
        session, morning, now=at("2025-05-16 05:00"), settings=settings
    ).edition
    service.remove_post(session, draft, draft.items[-1].post_id, settings)
    session.commit()

    added = service.refresh_posts(session, draft, now=at("2025-05-16 06:00"), settings=settings)
    session.commit()
    run_dispatcher(session, settings, at("2025-05-16 07:00"))
    run_dispatcher(session, settings, at("2025-05-17 07:00"))

    assert added == 0
    assert placements(session, morning) == {"Story number 2": [MAY_16]}


def test_the_posts_of_a_cancelled_edition_go_into_the_next_one(
    session: Session, settings: Settings
) -> None:
    approved = make_list(session, "approved", approval=True)
    publish(session, 1, at("2025-05-16 05:00"))
    run_dispatcher(session, settings, at("2025-05-16 07:00"))
    service.cancel(session, editions_of(session, approved)[MAY_16], now=at("2025-05-16 07:30"))
    session.commit()

    run_dispatcher(session, settings, at("2025-05-17 07:00"))

    assert titles(editions_of(session, approved)[MAY_17]) == ["Story number 1"]


# --- Exactly once, whatever the order things arrive in ------------------------------------

FIRST_DAY = date(2025, 5, 12)
ARRIVAL_DAYS = 5
POSTS = 30


@dataclass(frozen=True)
class Arrival:
    number: int
    seen: datetime
    published: datetime
    category: str


def arrivals(rng: random.Random) -> list[Arrival]:
    """Posts first seen over five days, a third of them late by up to 20 hours."""
    start = datetime.combine(FIRST_DAY, time(), tzinfo=UTC)
    found = []
    for number in range(POSTS):
        seen = start + timedelta(seconds=rng.uniform(0, ARRIVAL_DAYS * 86400))
        late = timedelta(hours=rng.uniform(0, 20)) if rng.random() < 1 / 3 else timedelta(0)
        found.append(Arrival(number, seen, seen - late, rng.choice(["World", "Sports"])))
    return found


def first_send_after(moment: datetime) -> date:
    """The day of the first 07:00 (the lists' time) at or after ``moment``."""
    day = moment.date()
    return day if moment <= datetime.combine(day, time(7), tzinfo=UTC) else day + timedelta(1)


@pytest.mark.parametrize("seed", range(8))
def test_every_post_goes_into_exactly_one_edition_of_each_list_it_fits(
    session: Session, settings: Settings, seed: int
) -> None:
    rng = random.Random(seed)
    everything = make_list(session, "everything")
    world = make_list(session, "world", categories=["World"])
    posts = arrivals(rng)
    # Events in time order: posts seen, the dispatcher on the hour, and on some days an
    # editor preparing the edition early and refreshing it before 07:00.
    events: list[tuple[datetime, str, Arrival | None]] = [(a.seen, "seen", a) for a in posts]
    for offset in range(ARRIVAL_DAYS + 2):
        day = FIRST_DAY + timedelta(days=offset)
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        events += [(midnight + timedelta(hours=h), "dispatch", None) for h in range(24)]
        if rng.random() < 0.5:
            prepared = midnight + timedelta(hours=rng.uniform(3, 6))
            events.append((prepared, "prepare", None))
            refresh = prepared + timedelta(hours=rng.uniform(0, 1))
            events.append((refresh, "refresh", None))
    events.sort(key=lambda event: event[0])

    for moment, kind, arrival in events:
        if kind == "seen":
            assert arrival is not None
            publish(session, arrival.number, arrival.published, arrival.category)
        elif kind == "dispatch":
            run_dispatcher(session, settings, moment)
        else:
            nl = rng.choice([everything, world])
            edition = service.todays_edition(session, nl, now=moment, settings=settings).edition
            if kind == "refresh" and edition.status in (
                EditionStatus.DRAFT, EditionStatus.SKIPPED,
            ):  # fmt: skip
                service.refresh_posts(session, edition, now=moment, settings=settings)
            session.commit()

    for nl, fits in ((everything, posts), (world, [a for a in posts if a.category == "World"])):
        expected = {f"Story number {a.number}": [first_send_after(a.seen)] for a in fits}
        assert placements(session, nl) == expected, f"seed {seed}, list {nl.slug}"
        for edition in editions_of(session, nl).values():
            assert edition.status in (EditionStatus.SENT, EditionStatus.SKIPPED)
            assert all(i.post.published_at <= edition.cutoff for i in edition.items)
