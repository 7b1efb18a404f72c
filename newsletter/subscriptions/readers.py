"""What readers do for themselves: sign up, confirm, change preferences, leave, erase.

Every function takes the session and plain values, records consent, and never commits;
the web layer owns the unit of work and sends emails only after the commit.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from newsletter.db import affected_rows
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    Delivery,
    Edition,
    Frequency,
    InboundMessage,
    MailEvent,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions import clicks, consent
from newsletter.subscriptions.addresses import normalise_address
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.service import find_subscriber


@dataclass(frozen=True)
class SignupResult:
    subscriber_id: int
    # Lists awaiting confirmation: a confirmation email is due when this is not empty.
    pending_list_ids: list[int]


def request_signup(
    session: Session,
    *,
    email: str,
    name: str,
    lists: list[NewsletterList],
    frequency: Frequency,
    client: Client,
    wording: str,
    now: datetime,
) -> SignupResult:
    """Record a signup awaiting double opt-in.

    An address already confirmed on a list is left as it is, and the caller answers the same
    either way, so the form cannot tell whether an address is subscribed.
    """
    address = normalise_address(email)
    subscriber = find_subscriber(session, address)
    if subscriber is not None and subscriber.status == SubscriberStatus.BLOCKED:
        # It bounced or complained: never mail it, not even a confirmation request.
        return SignupResult(subscriber.id, [])
    if subscriber is None:
        subscriber = Subscriber(email=address, name=name.strip()[:200])
        session.add(subscriber)
        session.flush()
    current = {
        s.list_id: s
        for s in session.scalars(
            select(Subscription).where(Subscription.subscriber_id == subscriber.id)
        )
    }
    pending = []
    for nl in lists:
        subscription = current.get(nl.id)
        if subscription is not None and subscription.status == SubscriptionStatus.CONFIRMED:
            continue
        if subscription is None:
            subscription = Subscription(
                subscriber_id=subscriber.id, list_id=nl.id, source=client.source
            )
            session.add(subscription)
        subscription.status = SubscriptionStatus.PENDING
        subscription.frequency = frequency
        subscription.created_at = now
        pending.append(nl.id)
        consent.record(
            session, ConsentAction.SIGNUP, email=address, subscriber_id=subscriber.id,
            list_id=nl.id, client=client, now=now, wording=consent.with_notices(wording, [nl]),
            detail=f"frequency={frequency.value}",
        )  # fmt: skip
    session.flush()
    return SignupResult(subscriber.id, pending)


@dataclass(frozen=True)
class ConfirmResult:
    subscriber: Subscriber
    newly_confirmed: list[NewsletterList]
    already_confirmed: list[NewsletterList]


def confirm(
    session: Session, subscriber_id: int, list_ids: list[int], *, client: Client, now: datetime
) -> ConfirmResult | None:
    """Confirm the pending subscriptions a confirmation link names; None if the reader is gone.

    Idempotent, and a replayed link never re-subscribes a reader who left since. A blocked
    reader confirms nothing: their address bounced or complained after they signed up, and
    confirming would only queue a welcome nobody should send.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    rows = session.scalars(
        select(Subscription)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.list_id.in_(list_ids))
        .options(selectinload(Subscription.newsletter_list))
    ).all()
    newly, already = [], []
    blocked = subscriber.status == SubscriberStatus.BLOCKED
    for subscription in rows:
        if subscription.status == SubscriptionStatus.PENDING and not blocked:
            subscription.status = SubscriptionStatus.CONFIRMED
            subscription.confirmed_at = now
            newly.append(subscription.newsletter_list)
            consent.record(
                session, ConsentAction.CONFIRM, email=subscriber.email,
                subscriber_id=subscriber.id, list_id=subscription.list_id, client=client, now=now,
                wording="Confirm my subscription",
            )  # fmt: skip
        elif subscription.status == SubscriptionStatus.CONFIRMED:
            already.append(subscription.newsletter_list)
    session.flush()
    return ConfirmResult(subscriber, newly, already)


def unsubscribe(
    session: Session, subscriber_id: int, list_id: int, *, client: Client, now: datetime
) -> NewsletterList | None:
    """Leave one list at once; idempotent. Returns the list, or None if nothing is known."""
    subscription = session.scalar(
        select(Subscription)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.list_id == list_id)
        .options(selectinload(Subscription.subscriber), selectinload(Subscription.newsletter_list))
    )
    if subscription is None:
        return None
    if subscription.status != SubscriptionStatus.UNSUBSCRIBED:
        subscription.status = SubscriptionStatus.UNSUBSCRIBED
        subscription.unsubscribed_at = now
        consent.record(
            session, ConsentAction.UNSUBSCRIBE, email=subscription.subscriber.email,
            subscriber_id=subscriber_id, list_id=list_id, client=client, now=now,
        )  # fmt: skip
        session.flush()
    return subscription.newsletter_list


class UnknownList(ValueError):
    """A reader chose a list that does not exist (any more)."""


@dataclass(frozen=True)
class Preferences:
    list_ids: frozenset[int]  # lists the reader wants
    frequency: Frequency
    paused: bool


def update_preferences(
    session: Session, subscriber_id: int, wanted: Preferences, *, client: Client, now: datetime
) -> None:
    """Apply the preferences form. The signed link proves the address, so lists added here
    are confirmed at once; lists removed are unsubscribed."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return
    lists = {nl.id: nl for nl in session.scalars(select(NewsletterList))}
    known = set(lists)
    unknown = wanted.list_ids - known
    if unknown:
        raise UnknownList("one of the chosen lists does not exist")
    current = {s.list_id: s for s in subscriber.subscriptions}
    for list_id in known:
        subscription = current.get(list_id)
        if list_id in wanted.list_ids:
            if subscription is None:
                subscription = Subscription(
                    subscriber_id=subscriber_id, list_id=list_id, source=client.source
                )
                session.add(subscription)
            if subscription.status != SubscriptionStatus.CONFIRMED:
                subscription.status = SubscriptionStatus.CONFIRMED
                subscription.confirmed_at = now
                subscription.unsubscribed_at = None
            subscription.frequency = wanted.frequency
            if wanted.paused and subscription.paused_at is None:
                subscription.paused_at = now
            elif not wanted.paused:
                subscription.paused_at = None
        elif subscription is not None and subscription.status != SubscriptionStatus.UNSUBSCRIBED:
            subscription.status = SubscriptionStatus.UNSUBSCRIBED
            subscription.unsubscribed_at = now
    consent.record(
        session, ConsentAction.PREFERENCES, email=subscriber.email, subscriber_id=subscriber_id,
        list_id=None, client=client, now=now,
        wording=consent.with_notices(
            "Save my preferences", [lists[i] for i in sorted(wanted.list_ids)]
        ),
        detail=(
            f"lists={sorted(wanted.list_ids)} frequency={wanted.frequency.value} "
            f"paused={wanted.paused}"
        ),
    )  # fmt: skip
    session.flush()


def unsubscribe_all(session: Session, subscriber_id: int, *, client: Client, now: datetime) -> None:
    for list_id in session.scalars(
        select(Subscription.list_id).where(Subscription.subscriber_id == subscriber_id)
    ).all():
        unsubscribe(session, subscriber_id, list_id, client=client, now=now)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_data(session: Session, subscriber_id: int) -> dict[str, Any] | None:
    """Everything stored about a reader, as JSON-ready values (the "download my data" file)."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return None
    subscriptions = session.scalars(
        select(Subscription)
        .where(Subscription.subscriber_id == subscriber_id)
        .options(selectinload(Subscription.newsletter_list))
    ).all()
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.id)
    ).all()
    deliveries = session.execute(
        select(Delivery, Edition.edition_date, NewsletterList.slug)
        .join(Edition, Edition.id == Delivery.edition_id)
        .join(NewsletterList, NewsletterList.id == Edition.list_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id)
    ).all()
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status.value,
        "created_at": _stamp(subscriber.created_at),
        "subscriptions": [
            {
                "list": s.newsletter_list.slug,
                "list_name": s.newsletter_list.name,
                "status": s.status.value,
                "frequency": s.frequency.value,
                "paused": s.paused_at is not None,
                "source": s.source,
                "created_at": _stamp(s.created_at),
                "confirmed_at": _stamp(s.confirmed_at),
                "unsubscribed_at": _stamp(s.unsubscribed_at),
            }
            for s in subscriptions
        ],
        "consent_log": [
            {
                "action": e.action.value,
                "list_id": e.list_id,
                "source": e.source,
                "ip": e.ip,
                "user_agent": e.user_agent,
                "wording": e.wording,
                "detail": e.detail,
                "at": _stamp(e.created_at),
            }
            for e in events
        ],
        "deliveries": [
            {
                "list": slug,
                "edition_date": edition_date.isoformat(),
                "status": d.status.value,
                "sent_at": _stamp(d.sent_at),
                "message_id": d.message_id,
            }
            for d, edition_date, slug in deliveries
        ],
        "clicks": clicks.export(session, subscriber_id),
    }


def link_is_foreign(session: Session, subscriber_id: int, key: str) -> bool:
    """Whether a link made for the reader ``subscriber_id`` with ``key`` now finds somebody
    else under that id: the reader it was made for is gone, and it must act on nobody."""
    held = session.scalar(select(Subscriber.token_key).where(Subscriber.id == subscriber_id))
    return held is not None and not hmac.compare_digest(held, key)


def erase(session: Session, subscriber_id: int, *, client: Client, now: datetime) -> bool:
    """Delete a reader and everything about them; the consent log keeps an anonymous trace,
    the mail that came back for them keeps its counts (kind, category, receiving domain)
    but no longer their address or the messages themselves, and their clicks stay in the
    counts but no longer name them."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return False
    consent.record(
        session, ConsentAction.ERASE, email=subscriber.email, subscriber_id=subscriber_id,
        list_id=None, client=client, now=now, wording="Delete my data",
    )  # fmt: skip
    session.flush()
    consent.anonymise(session, subscriber_id, subscriber.email)
    _forget_returned_mail(session, subscriber_id, subscriber.email)
    clicks.forget(session, subscriber_id)
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))
    session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber_id))
    session.delete(subscriber)
    session.flush()
    return True


def _forget_returned_mail(session: Session, subscriber_id: int, email: str) -> None:
    # An event names its reader by id once it was verified, by the address it quoted
    # otherwise (a forged or unreadable bounce, a request we did not trust): both are theirs.
    theirs = or_(
        MailEvent.subscriber_id == subscriber_id, func.lower(MailEvent.address) == email.lower()
    )
    returned = select(MailEvent.inbound_message_id).where(
        theirs, MailEvent.inbound_message_id.is_not(None)
    )
    session.execute(update(InboundMessage).where(InboundMessage.id.in_(returned)).values(raw=None))
    # A request they mailed us has their address as its envelope sender too.
    session.execute(
        update(InboundMessage)
        .where(func.lower(InboundMessage.envelope_from) == email.lower())
        .values(envelope_from="")
    )
    session.execute(update(MailEvent).where(theirs).values(address="", diagnostic=""))


def purge_expired_signups(session: Session, *, now: datetime, ttl: timedelta) -> int:
    """Drop signups never confirmed within ``ttl``, and readers left with no subscription."""
    expired = session.execute(
        delete(Subscription).where(
            Subscription.status == SubscriptionStatus.PENDING,
            Subscription.created_at < now - ttl,
        )
    )
    orphans = session.execute(
        select(Subscriber.id, Subscriber.email).where(
            ~exists().where(Subscription.subscriber_id == Subscriber.id),
            ~exists().where(Delivery.subscriber_id == Subscriber.id),
        )
    ).all()
    for subscriber_id, address in orphans:
        # Their signup events stay (append-only) but no longer say who signed up.
        consent.anonymise(session, subscriber_id, address)
    session.execute(delete(Subscriber).where(Subscriber.id.in_([o.id for o in orphans])))
    return affected_rows(expired)
