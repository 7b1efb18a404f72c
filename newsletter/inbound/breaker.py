"""The circuit breaker: an edition that bounces or is reported badly pauses itself.

Among an edition's first ``breaker_sample`` deliveries, once ``breaker_min_messages`` of
them were tried, hard bounces above ``breaker_hard_bounce_rate`` (an imported list of dead
addresses) or complaints above ``breaker_complaint_rate`` pause the send before it costs
the domain its reputation. The edition says why; an editor who resumes it overrides the
breaker for the rest of that send.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions import lifecycle
from newsletter.editions.errors import TransitionError
from newsletter.models import Delivery, DeliveryStatus, Edition, EditionStatus, MailEvent
from newsletter.models import MailEventKind as Kind

_TRIED = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN)


def check(session: Session, edition_id: int, *, settings: Settings, now: datetime) -> bool:
    """Pause the edition if its sample crossed a threshold; True if it paused now."""
    edition = session.get(Edition, edition_id)
    if edition is None or edition.status != EditionStatus.SENDING:
        return False
    if edition.pause_reason.startswith(lifecycle.OVERRIDDEN):
        return False
    sample = (
        select(Delivery.subscriber_id, Delivery.status)
        .where(Delivery.edition_id == edition_id)
        .order_by(Delivery.id)
        .limit(settings.breaker_sample)
        .subquery()
    )
    tried = session.scalar(
        select(func.count()).select_from(sample).where(sample.c.status.in_(_TRIED))
    )
    if not tried or tried < settings.breaker_min_messages:
        return False

    def readers(kind: Kind, category: str | None = None) -> int:
        query = select(func.count(func.distinct(MailEvent.subscriber_id))).where(
            MailEvent.edition_id == edition_id,
            MailEvent.kind == kind,
            MailEvent.subscriber_id.in_(select(sample.c.subscriber_id)),
        )
        if category is not None:
            query = query.where(MailEvent.category == category)
        return int(session.scalar(query) or 0)

    hard, complaints = readers(Kind.BOUNCE, "hard"), readers(Kind.COMPLAINT)
    why = ""
    if hard / tried > settings.breaker_hard_bounce_rate:
        why = (
            f"{hard} of the first {tried} messages bounced as dead addresses "
            f"({hard / tried:.1%}, above {settings.breaker_hard_bounce_rate:.1%}): is the list "
            "an old or imported one?"
        )
    elif (
        complaints / tried > settings.breaker_complaint_rate
        # One complaint alone never pauses a send: only once the sample is large enough
        # for the rate to take two.
        and complaints >= 2
    ):
        why = (
            f"{complaints} of the first {tried} readers reported it as spam "
            f"({complaints / tried:.2%}, above {settings.breaker_complaint_rate:.2%})."
        )
    if not why:
        return False
    try:
        lifecycle.pause(session, edition, reason=f"Paused itself at {now:%H:%M} UTC: {why}")
    except TransitionError:
        # It finished, or an editor paused or cancelled it, since it was read: and raising
        # here would roll back the bounces that were just recorded.
        return False
    return True
