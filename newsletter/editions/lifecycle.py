"""Every change of an edition's status, and nothing else, is made here.

An edition is born ``draft``, ``scheduled`` or ``skipped`` by the builder, or ``missed`` by
the dispatcher for a day nothing ran; from then on each arrow below is one function of this
module, done as a conditional UPDATE that names the states it leaves. Of two callers racing
for the same arrow (two dispatchers, an editor and the dispatcher), exactly one wins; the
other gets ``False`` back or a :class:`TransitionError` saying what the edition is now.

::

    (built) ──> draft ──schedule / approve_early──> scheduled ──start_sending──> sending
                  ^  <──────────hold_for_review────────  │                     │  ^  │
                  │                                       │               pause │  │ resume
    (built) ──> skipped ──reopen_skipped (posts came)─────┘                     v  │  │
                                                                              paused │
    draft, scheduled ──miss (time + grace passed)──> missed                          │
    draft, scheduled, sending, paused ──cancel──> cancelled            finish_if_complete
                                                                                     v
                                              sending <──reopen_for_retry────────── sent

Deciding *when* (dispatch), *what* (build, editing) and *how* (delivery) live elsewhere and
call these; the functions change rows and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.delivery import fanout
from newsletter.editions.errors import EditionNotFound, TransitionError
from newsletter.models import EDITABLE_STATUSES, Edition, EditionStatus

CANCELLED_BY_EDITOR = "the edition was cancelled by an editor"
CANCELLABLE = (*EDITABLE_STATUSES, EditionStatus.SENDING, EditionStatus.PAUSED)


def initial_status(*, has_posts: bool, requires_approval: bool) -> EditionStatus:
    """What a freshly built edition is: nothing to send, waiting for an editor, or approved."""
    if not has_posts:
        return EditionStatus.SKIPPED
    return EditionStatus.DRAFT if requires_approval else EditionStatus.SCHEDULED


def _move(
    session: Session,
    edition_id: int,
    sources: Iterable[EditionStatus],
    target: EditionStatus,
    *conditions: Any,
    **values: Any,
) -> bool:
    """The one way a status changes: an UPDATE guarded by the states it may leave."""
    moved = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status.in_(list(sources)), *conditions)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(moved) > 0


def _reload(session: Session, edition: Edition) -> None:
    """Read the edition as the UPDATE left it, not as it was first loaded."""
    session.expire(edition)


def _refuse(session: Session, edition: Edition, why: str) -> TransitionError:
    _reload(session, edition)
    return TransitionError(f"This edition is {edition.status.value}: {why}")


def schedule(session: Session, edition: Edition, at: datetime, *, now: datetime) -> None:
    """Approve the edition to go out at ``at``; the dispatcher sends it then."""
    if at.tzinfo is None:
        raise TransitionError("Give the time with its timezone, e.g. 2025-05-16T07:00:00+01:00.")
    if (now - at).total_seconds() > 60:
        raise TransitionError("That time has passed: choose a later one, or send it now.")
    if not _move(session, edition.id, EDITABLE_STATUSES, EditionStatus.SCHEDULED, scheduled_at=at):
        raise _refuse(session, edition, "only a draft or a scheduled edition can be changed.")
    _reload(session, edition)


def hold_for_review(session: Session, edition: Edition) -> bool:
    """An edition built ahead of its time by an editor is a draft to look at, not approved."""
    held = _move(session, edition.id, [EditionStatus.SCHEDULED], EditionStatus.DRAFT)
    _reload(session, edition)
    return held


def approve_early(session: Session, edition: Edition, moment: datetime) -> bool:
    """The dispatcher takes an auto list's early draft to go out at the list's time.

    Of two dispatchers at once, the second waits for the first's commit (the row lock),
    then matches nothing: ``False``.
    """
    claimed = _move(
        session, edition.id, [EditionStatus.DRAFT], EditionStatus.SCHEDULED, scheduled_at=moment
    )
    _reload(session, edition)
    return claimed


def claim_skipped(session: Session, edition: Edition, cutoff: datetime) -> bool:
    """Claim a day skipped while empty for one more look, up to ``cutoff``.

    The status stays ``skipped``: the UPDATE only locks the row for this dispatcher, and only
    while the edition has not yet been looked at up to ``cutoff``.
    """
    claimed = _move(
        session, edition.id, [EditionStatus.SKIPPED], EditionStatus.SKIPPED,
        Edition.cutoff < cutoff,
    )  # fmt: skip
    _reload(session, edition)
    return claimed


def reopen_skipped(session: Session, edition: Edition) -> None:
    """A day skipped for want of posts has some now: it becomes a draft again."""
    if _move(session, edition.id, [EditionStatus.SKIPPED], EditionStatus.DRAFT, skip_reason=""):
        _reload(session, edition)


def start_sending(
    session: Session, edition_id: int, *, now: datetime, chunk: int = fanout.FANOUT_CHUNK
) -> int:
    """Move a draft or scheduled edition to sending and create its deliveries; returns how many.

    All in the caller's transaction: the edition is sending with all of its rows, or not
    sending with none. Only the caller whose UPDATE moves the edition creates rows, so
    sending the same edition twice, even at once from two processes, creates them once.
    """
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise EditionNotFound(f"There is no edition {edition_id}.")
    if edition.status in (EditionStatus.SKIPPED, EditionStatus.MISSED):
        raise TransitionError(
            f"edition {edition_id} was {edition.status.value}: {edition.skip_reason}"
        )
    if edition.status == EditionStatus.CANCELLED:
        raise TransitionError(f"edition {edition_id} was cancelled by an editor")
    if not _move(
        session, edition_id, EDITABLE_STATUSES, EditionStatus.SENDING, send_started_at=now
    ):
        return 0
    created = fanout.create_deliveries(session, edition, now=now, chunk=chunk)
    # No reader at all: nothing will ever finish the edition, so finish it now.
    finish_if_complete(session, edition_id, now=now)
    session.refresh(edition)
    return created


def finish_if_complete(session: Session, edition_id: int, *, now: datetime) -> bool:
    """Mark the edition sent once no delivery is queued or in flight."""
    return _move(
        session, edition_id, [EditionStatus.SENDING], EditionStatus.SENT,
        ~fanout.unfinished(edition_id), sent_at=now,
    )  # fmt: skip


# The prefix of the reason of an edition an editor resumed after it paused itself: the
# breaker does not trip again on the same send.
OVERRIDDEN = "resumed by an editor after: "


def pause(session: Session, edition: Edition, *, reason: str = "") -> None:
    """Stop sending: every batch stops before its next group (at most one group later).

    ``reason`` is set when the edition pauses itself (the bounce circuit breaker). A pause
    by hand keeps the reason there is: an editor's override lasts for the rest of the send.
    """
    reasons = {"pause_reason": reason} if reason else {}
    if not _move(session, edition.id, [EditionStatus.SENDING], EditionStatus.PAUSED, **reasons):
        raise _refuse(session, edition, "only a send can pause.")
    _reload(session, edition)


def resume(session: Session, edition: Edition) -> None:
    """Carry on where it stopped; enqueue its batches after commit (claims stop duplicates)."""
    reason = edition.pause_reason
    if reason and not reason.startswith(OVERRIDDEN):
        reason = f"{OVERRIDDEN}{reason}"
    if not _move(
        session, edition.id, [EditionStatus.PAUSED], EditionStatus.SENDING, pause_reason=reason
    ):
        raise _refuse(session, edition, "only a paused one resumes.")
    _reload(session, edition)


def cancel(session: Session, edition: Edition, *, now: datetime) -> int:
    """Call the edition off; readers not yet sent to never will be. Returns how many."""
    if not _move(session, edition.id, CANCELLABLE, EditionStatus.CANCELLED, cancelled_at=now):
        raise _refuse(session, edition, "it cannot be cancelled.")
    dropped = fanout.drop_queued(session, edition.id, CANCELLED_BY_EDITOR, now=now)
    _reload(session, edition)
    return dropped


def miss(session: Session, edition_id: int, reason: str) -> bool:
    """A scheduled edition, or a draft awaiting approval, whose time and grace have passed."""
    return _move(session, edition_id, EDITABLE_STATUSES, EditionStatus.MISSED, skip_reason=reason)


def reopen_for_retry(session: Session, edition_id: int) -> bool:
    """A sent edition whose uncertain deliveries an operator queued again sends once more."""
    return _move(session, edition_id, [EditionStatus.SENT], EditionStatus.SENDING, sent_at=None)


__all__ = [
    "CANCELLABLE",
    "CANCELLED_BY_EDITOR",
    "approve_early",
    "cancel",
    "claim_skipped",
    "finish_if_complete",
    "hold_for_review",
    "initial_status",
    "miss",
    "pause",
    "reopen_for_retry",
    "reopen_skipped",
    "resume",
    "schedule",
    "start_sending",
]
