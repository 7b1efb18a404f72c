"""The flush on a real Redis: settled messages are written once, a burst in progress waits,
and a flush that dies at any step neither loses nor doubles a click."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from sqlalchemy.orm import Session

from newsletter.analytics.buffer import CLICKS_KEY, RedisClickBuffer
from newsletter.analytics.flush import flush, record_batch, rules_of
from newsletter.analytics.machines import Click
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editions.lifecycle import start_sending
from newsletter.models import ClickHour, Edition, NewsletterList, TrackedLink
from tests.factories import edition_with_readers


@pytest.fixture
def buffer(redis_url: str) -> Iterator[RedisClickBuffer]:
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=CLICKS_KEY + "*"):
        client.delete(key)
    yield RedisClickBuffer(client)
    for key in client.scan_iter(match=CLICKS_KEY + "*"):
        client.delete(key)


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    edition = edition_with_readers(
        session, daily_list, ["ann@example.com"], now=now, settings=settings, posts=4
    )
    start_sending(session, edition.id, now=now)
    session.commit()
    return edition


def click(edition: Edition, number: int, ref: str, at: datetime, **flags: bool) -> str:
    sent = edition.send_started_at
    assert sent is not None
    return Click("c", edition.id, number, ref, sent.timestamp(), at.timestamp(), **flags).encode()


def clicks_by_number(session: Session, edition: Edition) -> dict[int, tuple[int, int]]:
    session.expire_all()
    return {
        link.number: (link.human_clicks, link.machine_clicks)
        for link in session.get(Edition, edition.id).links  # type: ignore[union-attr]
    }


def run(buffer: RedisClickBuffer, settings: Settings, now: datetime) -> int:
    scope = lambda: session_scope(settings.database_url)  # noqa: E731
    return flush(buffer, scope, now=now, settings=settings).clicks


def test_settled_clicks_are_written_and_a_message_still_clicking_waits(
    buffer: RedisClickBuffer, edition: Edition, session: Session, settings: Settings, now: datetime,
) -> None:  # fmt: skip
    later = now + timedelta(hours=1)
    buffer.push(click(edition, 1, "aQuiet", later))
    buffer.push(click(edition, 2, "aBusy", later + timedelta(seconds=50)))

    assert run(buffer, settings, later + timedelta(seconds=70)) == 1
    assert buffer.client.llen(CLICKS_KEY) == 1
    assert run(buffer, settings, later + timedelta(minutes=5)) == 1
    assert clicks_by_number(session, edition) == {1: (1, 0), 2: (1, 0), 3: (0, 0), 4: (0, 0)}


def test_a_burst_split_across_two_flushes_is_still_judged_whole(
    buffer: RedisClickBuffer, edition: Edition, session: Session, settings: Settings, now: datetime,
) -> None:  # fmt: skip
    start = now + timedelta(minutes=3)
    buffer.push(click(edition, 1, "aGate", start))
    run(buffer, settings, start + timedelta(seconds=1))  # mid-burst: nothing settles
    for number in (2, 3, 4):
        buffer.push(click(edition, number, "aGate", start + timedelta(seconds=number)))

    run(buffer, settings, start + timedelta(minutes=5))

    assert clicks_by_number(session, edition) == dict.fromkeys((1, 2, 3, 4), (0, 1))


def test_clicks_land_in_their_hour_after_the_send(
    buffer: RedisClickBuffer, edition: Edition, session: Session, settings: Settings, now: datetime,
) -> None:  # fmt: skip
    buffer.push(click(edition, 1, "aOne", now + timedelta(minutes=10)))
    buffer.push(click(edition, 1, "aTwo", now + timedelta(hours=5, minutes=1)))

    run(buffer, settings, now + timedelta(hours=6))

    hours = session.query(ClickHour).filter_by(edition_id=edition.id).order_by(ClickHour.hour)
    assert [(h.hour, h.human, h.machine) for h in hours] == [(0, 1, 0), (5, 1, 0)]


def test_a_flush_that_died_after_its_commit_counts_nothing_twice(
    buffer: RedisClickBuffer, edition: Edition, session: Session, settings: Settings, now: datetime,
) -> None:  # fmt: skip
    later = now + timedelta(hours=1)
    buffer.push(click(edition, 1, "aAnn", later))
    batch = buffer.take()
    assert batch is not None
    lines = buffer.read(batch)
    buffer.keep(batch, lines, [])
    with session_scope(settings.database_url) as dying:
        record_batch(dying, batch, lines, now=later, rules=rules_of(settings))
    # ... and the process died before it could delete the batch.

    assert run(buffer, settings, later + timedelta(minutes=5)) == 0
    assert buffer.batches() == []
    assert clicks_by_number(session, edition)[1] == (1, 0)


def test_a_flush_that_died_before_its_commit_loses_nothing(
    buffer: RedisClickBuffer, edition: Edition, session: Session, settings: Settings, now: datetime,
) -> None:  # fmt: skip
    later = now + timedelta(hours=1)
    buffer.push(click(edition, 3, "aAnn", later))
    assert buffer.take() is not None  # taken, then the process died

    assert run(buffer, settings, later + timedelta(minutes=5)) == 1
    assert clicks_by_number(session, edition)[3] == (1, 0)


def test_lines_that_are_no_clicks_are_dropped_and_the_rest_written(
    buffer: RedisClickBuffer, edition: Edition, session: Session, settings: Settings, now: datetime,
) -> None:  # fmt: skip
    later = now + timedelta(hours=1)
    buffer.client.rpush(CLICKS_KEY, b"\xff\xfe|x")
    for junk in ("", "c|1|2", "c|999999|1|aX|0|0|", click(edition, 99, "aX", later)):
        buffer.push(junk)
    buffer.push(click(edition, 2, "aAnn", later))

    assert run(buffer, settings, later + timedelta(minutes=5)) == 1
    assert clicks_by_number(session, edition)[2] == (1, 0)
    assert buffer.client.exists(CLICKS_KEY) == 0


def test_links_keep_their_numbers_when_the_edition_is_rendered_again(
    edition: Edition, session: Session
) -> None:
    numbers = {link.url: link.number for link in edition.links}

    assert sorted(numbers.values()) == [1, 2, 3, 4]
    assert [link.position for link in session.query(TrackedLink).order_by(TrackedLink.number)] == [
        1, 2, 3, 4,
    ]  # fmt: skip
