"""Each status change, allowed from the states its arrow leaves and refused from any other."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions import lifecycle
from newsletter.editions.errors import EditionError, TransitionError
from newsletter.models import Edition, EditionStatus, NewsletterList
from tests.factories import edition_with_readers

READERS = ["ada@example.com", "grace@example.com"]


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    return edition_with_readers(session, daily_list, READERS, now=now, settings=settings)


def test_a_transition_error_is_an_edition_error() -> None:
    # The web layer answers every EditionError that is not "not found" with 409.
    assert issubclass(TransitionError, EditionError)


def test_start_sending_moves_a_scheduled_edition_and_creates_its_deliveries(
    session: Session, edition: Edition, now: datetime
) -> None:
    created = lifecycle.start_sending(session, edition.id, now=now)

    assert created == len(READERS)
    assert edition.status == EditionStatus.SENDING
    assert edition.send_started_at == now


def test_start_sending_twice_creates_the_deliveries_once(
    session: Session, edition: Edition, now: datetime
) -> None:
    lifecycle.start_sending(session, edition.id, now=now)

    assert lifecycle.start_sending(session, edition.id, now=now) == 0


def test_a_cancelled_edition_cannot_start(
    session: Session, edition: Edition, now: datetime
) -> None:
    lifecycle.cancel(session, edition, now=now)

    with pytest.raises(TransitionError, match="cancelled by an editor"):
        lifecycle.start_sending(session, edition.id, now=now)


def test_only_a_send_pauses(session: Session, edition: Edition) -> None:
    with pytest.raises(TransitionError, match="This edition is scheduled: only a send can pause"):
        lifecycle.pause(session, edition)


def test_pause_then_resume(session: Session, edition: Edition, now: datetime) -> None:
    lifecycle.start_sending(session, edition.id, now=now)

    lifecycle.pause(session, edition)
    assert edition.status == EditionStatus.PAUSED
    lifecycle.resume(session, edition)
    assert edition.status == EditionStatus.SENDING


def test_cancel_mid_send_skips_the_queued_deliveries(
    session: Session, edition: Edition, now: datetime
) -> None:
    lifecycle.start_sending(session, edition.id, now=now)

    dropped = lifecycle.cancel(session, edition, now=now)

    assert dropped == len(READERS)
    assert edition.status == EditionStatus.CANCELLED


def test_a_sent_edition_cannot_be_scheduled_again(
    session: Session, edition: Edition, now: datetime
) -> None:
    lifecycle.start_sending(session, edition.id, now=now)
    lifecycle.cancel(session, edition, now=now)

    with pytest.raises(TransitionError, match="only a draft or a scheduled edition"):
        lifecycle.schedule(session, edition, now + timedelta(hours=1), now=now)


def test_a_sending_edition_is_never_recorded_missed(
    session: Session, edition: Edition, now: datetime
) -> None:
    lifecycle.start_sending(session, edition.id, now=now)

    assert not lifecycle.miss(session, edition.id, "too late")
    session.refresh(edition)
    assert edition.status == EditionStatus.SENDING


def test_only_a_sent_edition_reopens_for_a_retry(
    session: Session, edition: Edition, now: datetime
) -> None:
    assert not lifecycle.reopen_for_retry(session, edition.id)


def test_an_edition_built_early_is_held_as_a_draft(session: Session, edition: Edition) -> None:
    assert lifecycle.hold_for_review(session, edition)
    assert edition.status == EditionStatus.DRAFT
    assert lifecycle.approve_early(session, edition, edition.cutoff)
    assert edition.status == EditionStatus.SCHEDULED
