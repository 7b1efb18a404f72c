"""Finding readers, for the admin pages and the editor API alike."""

from __future__ import annotations

from sqlalchemy import Select, select

from newsletter.models import Subscriber, Subscription, SubscriptionStatus
from newsletter.models.subscriber import email_key


def subscribers_matching(
    q: str, *, status: SubscriptionStatus | None = None, list_id: int | None = None
) -> Select[Subscriber]:
    """Readers whose address contains ``q``, with a subscription in ``status`` and to
    ``list_id`` when given; newest first."""
    query = select(Subscriber).order_by(Subscriber.id.desc())
    if q.strip():
        # The case-folded key: how readers are found everywhere (see Subscriber.email_key).
        query = query.where(Subscriber.email_key.contains(email_key(q.strip()), autoescape=True))
    if status is not None or list_id is not None:
        members = select(Subscription.subscriber_id)
        if status is not None:
            members = members.where(Subscription.status == status)
        if list_id is not None:
            members = members.where(Subscription.list_id == list_id)
        query = query.where(Subscriber.id.in_(members))
    return query
