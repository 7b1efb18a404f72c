"""What editors do to an edition, for the admin pages, the editor API and the CLI alike.

Plain functions on a session: they change rows and never commit, and they never enqueue
(the caller does, after its commit). A request that does not fit the edition's state raises
``EditionError`` with a sentence an editor understands.

    draft ──schedule──> scheduled ──(dispatcher or send now)──> sending ──> sent
      │                    │                                    │  ^
      └──send now──────────┼──────────────────────────────> sending│
                           │                              pause v  │ resume
      cancel from draft, scheduled, sending or paused ───> cancelled / paused
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.delivery.personalise import Personalised, Recipient
from newsletter.delivery.send import prepare_edition, start_sending
from newsletter.digest.build import BuildResult, build_edition, ordered_items, render_edition
from newsletter.digest.schedule import edition_cutoff, local_date
from newsletter.digest.selection import Candidate, select_posts
from newsletter.models import (
    EDITABLE_STATUSES,
    Delivery,
    DeliveryStatus,
    Edition,
    EditionItem,
    EditionStatus,
    Frequency,
    NewsletterList,
    Post,
)

CANCELLED_BY_EDITOR = "the edition was cancelled by an editor"


class EditionError(ValueError):
    """The edition cannot do what was asked in its current state; the message says why."""


def get_edition(session: Session, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise EditionNotFound(f"There is no edition {edition_id}.")
    return edition


class EditionNotFound(EditionError):
    pass


def _editable(edition: Edition) -> None:
    if edition.status not in EDITABLE_STATUSES:
        raise EditionError(
            f"This edition is {edition.status.value}: only a draft or a scheduled edition "
            "can be changed."
        )


def todays_edition(
    session: Session,
    nl: NewsletterList,
    *,
    now: datetime,
    settings: Settings,
    frequency: Frequency = Frequency.DAILY,
    day: date | None = None,
) -> BuildResult:
    """Today's edition of the list (in its timezone), built now as a draft if need be.

    Built before the list's time, it holds the posts published so far; the dispatcher (or
    "Refresh posts") adds the later ones when the time comes.
    """
    day = day or local_date(nl.timezone, now)
    result = build_edition(session, nl, day, now=now, settings=settings, frequency=frequency)
    edition = result.edition
    if result.created and edition.status == EditionStatus.SCHEDULED and now < _due(edition):
        # Built ahead of its time by an editor: a draft to look at, not yet approved.
        edition.status = EditionStatus.DRAFT
    return result


def _due(edition: Edition) -> datetime:
    return edition.scheduled_at or edition.created_at


def refresh_posts(session: Session, edition: Edition, *, now: datetime, settings: Settings) -> int:
    """Add the posts published since the edition was built, up to its time; returns how many.

    Posts the editor removed stay removed: only the new stretch of time is searched. A day
    skipped for want of posts when built early gets its posts this way too.
    """
    if edition.status != EditionStatus.SKIPPED:
        _editable(edition)
    nl = edition.newsletter_list
    cutoff = edition_cutoff(nl.schedule, nl.timezone, edition.edition_date, now)
    if cutoff <= edition.cutoff:
        return 0
    candidates = session.execute(
        select(Post.id, Post.published_at, Post.category).where(
            Post.published_at > edition.cutoff, Post.published_at <= cutoff
        )
    )
    present = {item.post_id for item in edition.items}
    room = max(nl.max_posts - len(present), 0)
    new_ids = select_posts(
        (Candidate(*row) for row in candidates),
        window_start=edition.cutoff,
        cutoff=cutoff,
        categories=nl.categories,
        already_sent=present,
        limit=room,
    )
    edition.cutoff = cutoff
    if not new_ids:
        return 0
    posts = {p.id: p for p in session.scalars(select(Post).where(Post.id.in_(new_ids)))}
    # New posts lead, as the newest news, below anything pinned.
    shift = len(new_ids)
    for item in sorted(edition.items, key=lambda i: -i.position):
        item.position += shift
    session.flush()
    for position, post_id in enumerate(new_ids, start=1):
        edition.items.append(EditionItem(post=posts[post_id], position=position))
    _renumber(session, edition)
    if edition.status == EditionStatus.SKIPPED:
        edition.status, edition.skip_reason = EditionStatus.DRAFT, ""
    render_edition(edition, settings)
    return len(new_ids)


def _renumber(session: Session, edition: Edition) -> None:
    """Positions 1..n in the current order; via a free range, as positions are unique."""
    items = ordered_items(edition)
    offset = len(items) + max((i.position for i in items), default=0) + 1
    for index, item in enumerate(items):
        item.position = offset + index
    session.flush()
    for index, item in enumerate(items, start=1):
        item.position = index
    session.flush()


def _item(edition: Edition, post_id: int) -> EditionItem:
    for item in edition.items:
        if item.post_id == post_id:
            return item
    raise EditionError(f"Post {post_id} is not in this edition.")


def remove_post(session: Session, edition: Edition, post_id: int, settings: Settings) -> None:
    _editable(edition)
    item = _item(edition, post_id)
    if len(edition.items) == 1:
        raise EditionError(
            "This is the edition's last post: an edition needs at least one. Cancel the "
            "edition instead."
        )
    edition.items.remove(item)
    session.flush()
    _renumber(session, edition)
    render_edition(edition, settings)


def reorder(session: Session, edition: Edition, post_ids: list[int], settings: Settings) -> None:
    """Put the posts in this order (every post of the edition, each once)."""
    _editable(edition)
    current = {item.post_id: item for item in edition.items}
    if sorted(post_ids) != sorted(current):
        raise EditionError("The new order must list every post of the edition exactly once.")
    offset = len(post_ids) + max(i.position for i in edition.items) + 1
    for index, post_id in enumerate(post_ids):
        current[post_id].position = offset + index
    session.flush()
    _renumber(session, edition)
    render_edition(edition, settings)


def move(session: Session, edition: Edition, post_id: int, steps: int, settings: Settings) -> None:
    """Move one post up (negative) or down (positive) in the order."""
    order = [item.post_id for item in ordered_items(edition)]
    index = order.index(_item(edition, post_id).post_id)
    target = min(max(index + steps, 0), len(order) - 1)
    order.insert(target, order.pop(index))
    reorder(session, edition, order, settings)


def pin(session: Session, edition: Edition, post_id: int, pinned: bool, settings: Settings) -> None:
    _editable(edition)
    _item(edition, post_id).pinned = pinned
    _renumber(session, edition)
    render_edition(edition, settings)


@dataclass(frozen=True)
class Touches:
    """The editor's words; None leaves a field as it is, "" returns it to the generated one."""

    intro: str | None = None
    subject: str | None = None
    preheader: str | None = None


MAX_INTRO = 2000


def edit(session: Session, edition: Edition, touches: Touches, settings: Settings) -> None:
    _editable(edition)
    for name, value, limit in (
        ("subject", touches.subject, 300),
        ("preheader", touches.preheader, 300),
        ("intro", touches.intro, MAX_INTRO),
    ):
        if value is None:
            continue
        value = value.strip()
        if len(value) > limit:
            raise EditionError(f"The {name} is {len(value)} characters; the limit is {limit}.")
        if name != "intro" and ("\r" in value or "\n" in value):
            raise EditionError(f"The {name} must be a single line.")
    if touches.intro is not None:
        edition.intro = touches.intro.strip()
    if touches.subject is not None:
        edition.subject_override = touches.subject.strip()
    if touches.preheader is not None:
        edition.preheader_override = touches.preheader.strip()
    render_edition(edition, settings)


def rerender(edition: Edition, settings: Settings) -> None:
    _editable(edition)
    render_edition(edition, settings)


def schedule(edition: Edition, at: datetime, *, now: datetime) -> None:
    """Approve the edition to go out at ``at`` (UTC); the dispatcher sends it then."""
    _editable(edition)
    if at.tzinfo is None:
        raise EditionError("Give the time with its timezone, e.g. 2025-05-16T07:00:00+01:00.")
    if (now - at).total_seconds() > 60:
        raise EditionError("That time has passed: choose a later one, or send it now.")
    edition.status = EditionStatus.SCHEDULED
    edition.scheduled_at = at


def send_now(session: Session, edition: Edition, *, now: datetime) -> int:
    """Start sending at once; returns the deliveries created. Enqueue after commit."""
    if edition.status not in EDITABLE_STATUSES:
        raise EditionError(f"This edition is {edition.status.value}: it cannot be sent now.")
    return start_sending(session, edition.id, now=now)


def _move(session: Session, edition: Edition, source: EditionStatus, target: EditionStatus) -> bool:
    moved = session.execute(
        update(Edition)
        .where(Edition.id == edition.id, Edition.status == source)
        .values(status=target)
        .execution_options(synchronize_session=False)
    )
    session.refresh(edition)
    return affected_rows(moved) > 0


def pause(session: Session, edition: Edition) -> None:
    """Stop sending: every batch stops before its next group (at most one group later)."""
    if not _move(session, edition, EditionStatus.SENDING, EditionStatus.PAUSED):
        raise EditionError(f"This edition is {edition.status.value}: only a send can pause.")


def resume(session: Session, edition: Edition) -> None:
    """Carry on where it stopped; enqueue its batches after commit (claims stop duplicates)."""
    if not _move(session, edition, EditionStatus.PAUSED, EditionStatus.SENDING):
        raise EditionError(f"This edition is {edition.status.value}: only a paused one resumes.")


def cancel(session: Session, edition: Edition, *, now: datetime) -> int:
    """Call the edition off; readers not yet sent to never will be. Returns how many."""
    cancellable = (*EDITABLE_STATUSES, EditionStatus.SENDING, EditionStatus.PAUSED)
    if edition.status not in cancellable:
        raise EditionError(f"This edition is {edition.status.value}: it cannot be cancelled.")
    moved = session.execute(
        update(Edition)
        .where(Edition.id == edition.id, Edition.status.in_(cancellable))
        .values(status=EditionStatus.CANCELLED, cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    if not affected_rows(moved):
        session.refresh(edition)
        raise EditionError(f"This edition is {edition.status.value}: it cannot be cancelled.")
    dropped = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition.id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, last_error=CANCELLED_BY_EDITOR, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(edition)
    return affected_rows(dropped)


def test_message(
    edition: Edition, address: str, settings: Settings, *, now: datetime
) -> Personalised:
    """The edition as one reader would get it, addressed to ``address``, subject marked
    [TEST]. No delivery row is written: readers' ledgers are untouched."""
    prepared = prepare_edition(edition, settings, now=now)
    marked = dataclasses.replace(prepared, subject=f"[TEST] {prepared.subject}")
    return marked.personalise(Recipient(delivery_id=0, subscriber_id=0, email=address))


__all__ = [
    "EditionError",
    "EditionNotFound",
    "Touches",
    "cancel",
    "edit",
    "get_edition",
    "move",
    "pause",
    "pin",
    "refresh_posts",
    "remove_post",
    "reorder",
    "rerender",
    "resume",
    "schedule",
    "send_now",
    "test_message",
    "todays_edition",
]
