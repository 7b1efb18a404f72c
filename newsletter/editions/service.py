"""What editors do to an edition, for the admin pages, the editor API and the CLI alike.

Plain functions on a session: they change rows and never commit, and they never enqueue
(the caller does, after its commit). A request that does not fit the edition's state raises
``EditionError`` with a sentence an editor understands. Status changes are made by
:mod:`newsletter.editions.lifecycle`, whose docstring draws them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.prepared import Personalised, Recipient, prepare_edition
from newsletter.editions import lifecycle
from newsletter.editions.build import (
    BuildResult,
    build_edition,
    ordered_items,
    posts_to_take,
    render_edition,
)
from newsletter.editions.errors import EditionError, EditionNotFound
from newsletter.lists.schedule import edition_cutoff, local_date
from newsletter.models import (
    EDITABLE_STATUSES,
    Edition,
    EditionItem,
    EditionStatus,
    Frequency,
    NewsletterList,
    Post,
)


def get_edition(session: Session, edition_id: int) -> Edition:
    edition = session.get(Edition, edition_id)
    if edition is None:
        raise EditionNotFound(f"There is no edition {edition_id}.")
    return edition


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
    due = edition.scheduled_at
    if result.created and edition.status == EditionStatus.SCHEDULED and due and now < due:
        lifecycle.hold_for_review(session, edition)
    return result


def refresh_posts(session: Session, edition: Edition, *, now: datetime, settings: Settings) -> int:
    """Add the posts the edition would take now, up to its time; returns how many.

    Those published since it was built, and late ones: published earlier but seen only
    since. Posts in another edition of the list, or removed by an editor, stay out. A day
    skipped for want of posts when built early gets its posts this way too.
    """
    if edition.status != EditionStatus.SKIPPED:
        _editable(edition)
    nl = edition.newsletter_list
    cutoff = max(
        edition.cutoff, edition_cutoff(nl.schedule, nl.timezone, edition.edition_date, now)
    )
    new_ids = posts_to_take(
        session, nl, edition.frequency, window_start=edition.window_start, cutoff=cutoff,
        limit=nl.max_posts - len(edition.items),
    )  # fmt: skip
    edition.cutoff = cutoff
    if not new_ids:
        return 0
    posts = {p.id: p for p in session.scalars(select(Post).where(Post.id.in_(new_ids)))}
    added = [EditionItem(post=posts[post_id]) for post_id in new_ids]
    # New posts lead, as the newest news, below anything pinned.
    current = ordered_items(edition)  # pinned first
    pinned = sum(item.pinned for item in current)
    _renumber(session, edition, [*current[:pinned], *added, *current[pinned:]])
    lifecycle.reopen_skipped(session, edition)
    render_edition(edition, settings)
    return len(new_ids)


def _renumber(session: Session, edition: Edition, order: list[EditionItem] | None = None) -> None:
    """Positions 1..n in ``order`` (the current order if None), new items included.

    Positions are unique, and each UPDATE is checked on its own (SQLite, PostgreSQL): so
    every item first moves above all positions in use, then down to its place.
    """
    order = ordered_items(edition) if order is None else order
    offset = len(order) + max((i.position for i in edition.items), default=0) + 1
    for index, item in enumerate(order):
        item.position = offset + index
        if item not in edition.items:
            edition.items.append(item)
    session.flush()
    for index, item in enumerate(order, start=1):
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
    # Kept as removed, so no refresh or later edition of the list takes the post again.
    session.add(EditionItem(edition_id=edition.id, post_id=post_id, position=-post_id))
    _renumber(session, edition)
    render_edition(edition, settings)


def reorder(session: Session, edition: Edition, post_ids: list[int], settings: Settings) -> None:
    """Put the posts in this order (every post of the edition, each once)."""
    _editable(edition)
    current = {item.post_id: item for item in edition.items}
    if sorted(post_ids) != sorted(current):
        raise EditionError("The new order must list every post of the edition exactly once.")
    # Pinned posts stay on top, in the order given.
    order = sorted((current[post_id] for post_id in post_ids), key=lambda i: not i.pinned)
    _renumber(session, edition, order)
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


def schedule(session: Session, edition: Edition, at: datetime, *, now: datetime) -> None:
    """Approve the edition to go out at ``at`` (UTC); the dispatcher sends it then."""
    lifecycle.schedule(session, edition, at, now=now)


def pause(session: Session, edition: Edition) -> None:
    lifecycle.pause(session, edition)


def resume(session: Session, edition: Edition) -> None:
    lifecycle.resume(session, edition)


def cancel(session: Session, edition: Edition, *, now: datetime) -> int:
    return lifecycle.cancel(session, edition, now=now)


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
    "test_message",
    "todays_edition",
]
