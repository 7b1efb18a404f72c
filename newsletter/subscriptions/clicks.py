"""A reader's own clicks, stored only for lists that track readers individually: what their
data download shows of them, and how erasing the reader forgets them.

The per-link and per-edition counts never name a reader and stay as they are.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from newsletter.models import (
    ClickTracking,
    Delivery,
    Edition,
    EngagedMessage,
    NewsletterList,
    ReaderClick,
    Subscription,
    TrackedLink,
)


def forget(session: Session, subscriber_id: int) -> None:
    """Delete the reader's clicks and opens, and detach the messages they engaged with: each
    keeps counting once (unique clickers stay right) under a fresh random ref that leads
    back to no one. Run before the reader's deliveries go (a ref names a delivery)."""
    session.execute(delete(ReaderClick).where(ReaderClick.subscriber_id == subscriber_id))
    deliveries = {
        (edition_id, f"d{delivery_id}")
        for delivery_id, edition_id in session.execute(
            select(Delivery.id, Delivery.edition_id).where(Delivery.subscriber_id == subscriber_id)
        )
    }
    theirs = [
        (edition_id, kind, ref, named)
        for edition_id, kind, ref, named in session.execute(
            select(
                EngagedMessage.edition_id, EngagedMessage.kind, EngagedMessage.ref,
                EngagedMessage.subscriber_id,
            ).where(
                or_(
                    EngagedMessage.subscriber_id == subscriber_id,
                    EngagedMessage.ref.in_({ref for _, ref in deliveries}),
                )
            )
        )
        if named == subscriber_id or (edition_id, ref) in deliveries
    ]  # fmt: skip
    detach(session, [(edition_id, kind, ref) for edition_id, kind, ref, _ in theirs])


def detach(session: Session, messages: Iterable[tuple[int, str, str]]) -> None:
    """Give each engaged message (edition, kind, ref) a fresh random ref and no reader: it
    still counts once, and leads back to no one (erasure, and past the retention)."""
    for edition_id, kind, ref in messages:
        session.execute(
            update(EngagedMessage)
            .where(
                EngagedMessage.edition_id == edition_id,
                EngagedMessage.kind == kind,
                EngagedMessage.ref == ref,
            )
            .values(ref="x" + secrets.token_urlsafe(12), subscriber_id=None)
            .execution_options(synchronize_session=False)
        )


def export(session: Session, subscriber_id: int) -> dict[str, Any]:
    """The reader's stored clicks and opens, oldest first, for their data download."""
    rows = session.execute(
        select(ReaderClick, Edition.edition_date, NewsletterList.slug, TrackedLink.url)
        .join(Edition, Edition.id == ReaderClick.edition_id)
        .join(NewsletterList, NewsletterList.id == Edition.list_id)
        .outerjoin(TrackedLink, TrackedLink.id == ReaderClick.link_id)
        .where(ReaderClick.subscriber_id == subscriber_id)
        .order_by(ReaderClick.clicked_at, ReaderClick.id)
    ).all()
    tracking = session.scalars(
        select(NewsletterList.slug)
        .join(Subscription, Subscription.list_id == NewsletterList.id)
        .where(
            Subscription.subscriber_id == subscriber_id,
            NewsletterList.click_tracking == ClickTracking.INDIVIDUAL,
        )
        .order_by(NewsletterList.slug)
    ).all()
    return {
        "recorded": len(rows),
        "lists_tracking_individually": list(tracking),
        "items": [
            {
                "list": slug,
                "edition_date": edition_date.isoformat(),
                "kind": "open" if click.link_id is None else "click",
                "url": url,
                "at": click.clicked_at.isoformat(),
                "machine": click.machine,
            }
            for click, edition_date, slug, url in rows
        ],
    }
