"""An editor's controls from the terminal: draft, schedule, pause, resume and cancel."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.editions.lifecycle import CANCELLED_BY_EDITOR, start_sending
from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus, NewsletterList
from newsletter.posts.ingest import upsert_posts
from tests.cli_runner import run
from tests.factories import edition_with_readers, post
from tests.smtp_server import RecordingHandler

READERS = ["ann@example.com", "bob@example.com", "cat@example.com"]


def reloaded(session: Session, edition: Edition) -> Edition:
    session.expire_all()
    return session.get_one(Edition, edition.id)


@pytest.fixture
def draft(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    daily_list.requires_approval = True
    return edition_with_readers(session, daily_list, READERS, now=now, settings=settings)


@pytest.fixture
def sending(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    return edition


# --- draft -----------------------------------------------------------------------------------


def test_draft_prepares_todays_edition_of_a_list(
    session: Session, daily_list: NewsletterList
) -> None:
    daily_list.requires_approval = True
    yesterday_noon = datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC) - timedelta(
        days=1
    )
    upsert_posts(session, [post(1, yesterday_noon)])
    session.commit()
    code, output = run("digest", "draft", "daily")
    assert code == 0
    [edition] = session.scalars(select(Edition))
    assert f"Prepared edition {edition.id} of daily for {datetime.now(UTC).date()} (draft)" in (
        output
    )
    assert "1 story." in output
    assert "once an editor approves it" in output


def test_draft_of_an_unknown_list_names_the_lists(daily_list: NewsletterList) -> None:
    code, output = run("digest", "draft", "weekly")
    assert code == 1
    assert "no list 'weekly' (lists: daily)" in output


# --- schedule --------------------------------------------------------------------------------


def test_schedule_approves_a_draft_for_a_later_time(session: Session, draft: Edition) -> None:
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    code, output = run("digest", "schedule", str(draft.id), "--at", at.isoformat())
    assert code == 0
    assert f"scheduled for {at:%Y-%m-%d %H:%M} UTC" in output
    edition = reloaded(session, draft)
    assert edition.status == EditionStatus.SCHEDULED
    assert edition.scheduled_at == at


def test_schedule_reads_the_time_with_its_utc_offset(session: Session, draft: Edition) -> None:
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    in_paris = at.astimezone(timezone(timedelta(hours=2))).isoformat()
    run("digest", "schedule", str(draft.id), "--at", in_paris)
    assert reloaded(session, draft).scheduled_at == at


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("tomorrow at seven", "is not a time like 2025-05-16T07:00:00+01:00"),
        ("2030-05-16T07:00:00", "Give the time with its timezone"),
        ("2020-05-16T07:00:00+00:00", "That time has passed"),
        ("9999-12-31T23:00:00-05:00", "is too far from today to schedule"),
    ],
)
def test_schedule_refuses_a_time_it_cannot_use(
    session: Session, draft: Edition, at: str, message: str
) -> None:
    code, output = run("digest", "schedule", str(draft.id), "--at", at)
    assert code == 1
    assert message in output
    assert reloaded(session, draft).status == EditionStatus.DRAFT


def test_schedule_of_an_edition_already_sending_is_refused(sending: Edition) -> None:
    code, output = run("digest", "schedule", str(sending.id), "--at", "now")
    assert code == 1
    assert "This edition is sending" in output


# --- pause and cancel ------------------------------------------------------------------------


def test_pause_stops_a_send(session: Session, sending: Edition) -> None:
    code, output = run("digest", "pause", str(sending.id))
    assert code == 0
    assert f"Paused edition {sending.id}: 0 of 3 readers sent so far" in output
    assert f"newsletter digest resume {sending.id}" in output
    assert reloaded(session, sending).status == EditionStatus.PAUSED


def test_pause_of_a_draft_is_refused(draft: Edition) -> None:
    code, output = run("digest", "pause", str(draft.id))
    assert code == 1
    assert "This edition is draft: only a send can pause." in output


def test_pause_of_an_unknown_edition_says_so(session: Session) -> None:
    code, output = run("digest", "pause", "999")
    assert code == 1
    assert "There is no edition 999." in output


def test_resume_of_a_send_that_is_not_paused_is_refused(sending: Edition) -> None:
    code, output = run("digest", "resume", str(sending.id), "--no-wait")
    assert code == 1
    assert "This edition is sending: only a paused one resumes." in output


def test_cancel_skips_every_reader_not_yet_sent_to(session: Session, sending: Edition) -> None:
    code, output = run("digest", "cancel", str(sending.id))
    assert code == 0
    assert f"Cancelled edition {sending.id}: 3 readers not yet sent to will not get it" in output
    assert reloaded(session, sending).status == EditionStatus.CANCELLED
    errors = session.scalars(select(Delivery.last_error).where(Delivery.edition_id == sending.id))
    assert set(errors) == {CANCELLED_BY_EDITOR}


def test_cancel_of_a_cancelled_edition_is_refused(sending: Edition) -> None:
    run("digest", "cancel", str(sending.id))
    code, output = run("digest", "cancel", str(sending.id))
    assert code == 1
    assert "This edition is cancelled: it cannot be cancelled." in output


# --- through the workers ---------------------------------------------------------------------


def test_resume_finishes_a_paused_send_through_the_workers(
    worker: object, session: Session, sending: Edition, smtp: RecordingHandler
) -> None:
    run("digest", "pause", str(sending.id))
    code, output = run("digest", "resume", str(sending.id))
    assert code == 0
    assert f"Resumed edition {sending.id}" in output
    assert reloaded(session, sending).status == EditionStatus.SENT
    assert sorted(r for item in smtp.received for r in item.recipients) == READERS


def test_schedule_now_sends_at_once_through_the_workers(
    worker: object, session: Session, draft: Edition, smtp: RecordingHandler
) -> None:
    code, output = run("digest", "schedule", str(draft.id), "--at", "now")
    assert code == 0
    assert f"Queued edition {draft.id}" in output
    assert reloaded(session, draft).status == EditionStatus.SENT
    statuses = session.scalars(select(Delivery.status).where(Delivery.edition_id == draft.id))
    assert set(statuses) == {DeliveryStatus.SENT}
    assert len(smtp.received) == len(READERS)


def test_a_send_with_the_broker_down_says_so_and_keeps_the_edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    monkeypatch.setenv("NEWSLETTER_REDIS_URL", f"redis://127.0.0.1:{closed}/0")
    get_settings.cache_clear()

    try:
        code, output = run("digest", "send", str(edition.id), "--no-wait")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert code == 1
    assert "the broker did not take the send edition task" in output
    assert reloaded(session, edition).status == EditionStatus.SCHEDULED
