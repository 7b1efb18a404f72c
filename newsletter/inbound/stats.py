"""What came back, counted: per edition, per list over a window, per receiving domain, and
the readers blocked. Plain functions over a session, shared by the admin, the editor API,
``/metrics`` and the CLI.

How an event is attributed to an edition:

- **Bounces and complaints** carry the edition they came back from (the signed VERP tag or
  Message-ID names it), so they count towards exactly that edition.
- **Unsubscribes** (by the link's page or the preferences page, by RFC 8058 one-click, or by
  email, which includes those a sending provider reported) are consent-log rows, which name
  a list and a time but no edition. One counts towards an edition when it is on the
  edition's list, made by a reader the edition was delivered to, at or after the edition
  started sending and before the next edition of the same list and frequency started: the
  last message a reader had from the list is the one they acted on. Readers who erased
  their data since are no longer linked to their consent rows and are not counted.

A failed bounce counts when it did something to the reader: a hard one blocked them, a soft
one added to their score (at most once a day) or blocked them. Delayed-delivery reports and a
second soft bounce on the same day are recorded but not counted, since the event does not
keep the DSN's action to tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from newsletter.inbound.policy import BLOCKED, SCORED
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    Edition,
    MailEvent,
    MailEventKind,
    Subscriber,
    SubscriberStatus,
)

# Gmail and Yahoo refuse bulk senders whose spam-complaint rate reaches 0.3%.
GMAIL_COMPLAINT_LIMIT = 0.003

# Consent-log sources of unsubscribes made through the web, by what the reader pressed: the
# button of the page the footer link opens, or the preferences page that link leads to;
# the RFC 8058 POST a mail client sends for its own unsubscribe button; an email request.
LINK_SOURCES = ("page", "preferences")
ONE_CLICK_SOURCE = "one-click"
EMAIL_SOURCE = "email"
# An unsubscribe a sending provider reported (its own unsubscribe link, or the mailto: or
# one-click of List-Unsubscribe, which it does not tell apart) came back the way an email
# request does, as a mail event: counted with "email". The consent log keeps the provider.
PROVIDER_SOURCES = ("ses", "sendgrid", "mailgun", "postmark")

# Outcomes of a failed hard or soft bounce that acted on the reader.
_COUNTED_BOUNCES = (BLOCKED, SCORED)


@dataclass(frozen=True)
class EditionOutcomes:
    """What became of one edition's messages, by reader."""

    edition_id: int
    delivered: int  # accepted by the receiving server
    bounced_hard: int
    bounced_soft: int
    refused_sender: int  # refused for a reason on our side: never held against the reader
    complaints: int
    unsubscribed_link: int
    unsubscribed_one_click: int
    unsubscribed_email: int

    @property
    def unsubscribed(self) -> int:
        return self.unsubscribed_link + self.unsubscribed_one_click + self.unsubscribed_email


def _readers(query: Select[Any]) -> Select[Any]:
    return query.with_only_columns(func.count(func.distinct(MailEvent.subscriber_id)))


def _bounces(category: str) -> Select[Any]:
    query = select(MailEvent.id).where(
        MailEvent.kind == MailEventKind.BOUNCE,
        MailEvent.category == category,
        MailEvent.subscriber_id.is_not(None),
    )
    if category != "sender":
        query = query.where(MailEvent.outcome.in_(_COUNTED_BOUNCES))
    return query


def _complaints() -> Select[Any]:
    return select(MailEvent.id).where(
        MailEvent.kind == MailEventKind.COMPLAINT, MailEvent.subscriber_id.is_not(None)
    )


def edition_outcomes(session: Session, edition_id: int) -> EditionOutcomes:
    """Delivered, bounced, refused, reported and unsubscribed readers of one edition."""

    def count(query: Select[Any]) -> int:
        return int(session.scalar(_readers(query.where(MailEvent.edition_id == edition_id))) or 0)

    delivered = session.scalar(
        select(func.count()).where(
            Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SENT
        )
    )
    left = _unsubscribes(session, edition_id)
    return EditionOutcomes(
        edition_id=edition_id,
        delivered=int(delivered or 0),
        bounced_hard=count(_bounces("hard")),
        bounced_soft=count(_bounces("soft")),
        refused_sender=count(_bounces("sender")),
        complaints=count(_complaints()),
        unsubscribed_link=sum(n for source, n in left.items() if source in LINK_SOURCES),
        unsubscribed_one_click=left.get(ONE_CLICK_SOURCE, 0),
        unsubscribed_email=sum(
            n for source, n in left.items() if source in (EMAIL_SOURCE, *PROVIDER_SOURCES)
        ),
    )


def _unsubscribes(session: Session, edition_id: int) -> dict[str, int]:
    """Readers of the edition who left its list before the next edition, by source."""
    edition = session.get(Edition, edition_id)
    if edition is None or edition.send_started_at is None:
        return {}
    following = session.scalar(
        select(func.min(Edition.send_started_at)).where(
            Edition.list_id == edition.list_id,
            Edition.frequency == edition.frequency,
            Edition.send_started_at > edition.send_started_at,
        )
    )
    received = select(Delivery.subscriber_id).where(
        Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SENT
    )
    query = (
        select(ConsentEvent.source, func.count(func.distinct(ConsentEvent.subscriber_id)))
        .where(
            ConsentEvent.action == ConsentAction.UNSUBSCRIBE,
            ConsentEvent.list_id == edition.list_id,
            ConsentEvent.created_at >= edition.send_started_at,
            ConsentEvent.subscriber_id.in_(received),
        )
        .group_by(ConsentEvent.source)
    )
    if following is not None:
        query = query.where(ConsentEvent.created_at < following)
    return {str(source): int(n) for source, n in session.execute(query)}


@dataclass(frozen=True)
class ListRates:
    """A list's messages and what came back of them over the last ``days`` days."""

    list_id: int
    days: int
    delivered: int
    bounced_hard: int
    bounced_soft: int
    complaints: int

    @property
    def hard_bounce_rate(self) -> float:
        return self.bounced_hard / self.delivered if self.delivered else 0.0

    @property
    def soft_bounce_rate(self) -> float:
        return self.bounced_soft / self.delivered if self.delivered else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0

    @property
    def over_complaint_limit(self) -> bool:
        """At or over Gmail's line: "never reach a spam rate of 0.30% or higher"."""
        return self.delivered > 0 and self.complaint_rate >= GMAIL_COMPLAINT_LIMIT


def list_rates(session: Session, list_id: int, *, now: datetime, days: int = 30) -> ListRates:
    """Bounce and complaint rates of a list's messages over the ``days`` before ``now``.

    A rate is the share of messages delivered in the window: returned messages are counted
    once per (edition, reader), however many reports came back for one message.
    """
    since = now - timedelta(days=days)
    delivered = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(
            Edition.list_id == list_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= since,
        )
    )

    def messages(query: Select[Any]) -> int:
        returned = (
            query.with_only_columns(MailEvent.edition_id, MailEvent.subscriber_id)
            .where(MailEvent.list_id == list_id, MailEvent.created_at >= since)
            .distinct()
            .subquery()
        )
        return int(session.scalar(select(func.count()).select_from(returned)) or 0)

    return ListRates(
        list_id=list_id,
        days=days,
        delivered=int(delivered or 0),
        bounced_hard=messages(_bounces("hard")),
        bounced_soft=messages(_bounces("soft")),
        complaints=messages(_complaints()),
    )


@dataclass(frozen=True)
class DomainRefusals:
    """Our mail refused by one receiving domain for a reason on our side."""

    domain: str
    count: int
    last_at: datetime
    last_reason: str  # the latest refusal's status, reason and diagnostic, in one line


def sender_refusals(session: Session, *, now: datetime, days: int = 30) -> list[DomainRefusals]:
    """Sender-side refusals per receiving domain over the ``days`` before ``now``, most first.

    These are what an operator fixes (authentication, reputation, content, rate): they never
    count against a reader.
    """
    per_domain = (
        select(MailEvent.domain, func.count(), func.max(MailEvent.id))
        .where(
            MailEvent.kind == MailEventKind.BOUNCE,
            MailEvent.category == "sender",
            MailEvent.created_at >= now - timedelta(days=days),
        )
        .group_by(MailEvent.domain)
    )
    counts = {int(last): (str(domain), int(n)) for domain, n, last in session.execute(per_domain)}
    latest = session.scalars(select(MailEvent).where(MailEvent.id.in_(counts))).all()
    found = [
        DomainRefusals(counts[e.id][0] or "(unknown)", counts[e.id][1], e.created_at, _said(e))
        for e in latest
    ]
    return sorted(found, key=lambda r: (-r.count, r.domain))


def _said(event: MailEvent) -> str:
    words = " ".join(w for w in (event.status, event.reason.replace("_", " ")) if w)
    detail = " ".join(event.diagnostic.split())[:300]
    return f"{words}: {detail}" if words and detail else words or detail


@dataclass(frozen=True)
class BlockedReader:
    subscriber_id: int
    email: str
    blocked_at: datetime | None
    reason: str
    bounce_score: float


@dataclass(frozen=True)
class BlockedPage:
    """One page of the blocked readers, the most recently blocked first."""

    total: int
    page: int
    per_page: int
    readers: list[BlockedReader]


def blocked_readers(session: Session, *, page: int = 1, per_page: int = 50) -> BlockedPage:
    rows = session.scalars(
        select(Subscriber)
        .where(Subscriber.status == SubscriberStatus.BLOCKED)
        .order_by(Subscriber.blocked_at.desc().nulls_last(), Subscriber.id.desc())
        .offset((max(page, 1) - 1) * per_page)
        .limit(per_page)
    )
    readers = [
        BlockedReader(r.id, r.email, r.blocked_at, r.blocked_reason, r.bounce_score) for r in rows
    ]
    return BlockedPage(blocked_count(session), page, per_page, readers)


def blocked_count(session: Session) -> int:
    blocked = Subscriber.status == SubscriberStatus.BLOCKED
    return int(session.scalar(select(func.count()).select_from(Subscriber).where(blocked)) or 0)


def recent_events(session: Session, subscriber_id: int, *, limit: int = 20) -> list[MailEvent]:
    """The latest mail events about one reader, newest first."""
    return list(
        session.scalars(
            select(MailEvent)
            .where(MailEvent.subscriber_id == subscriber_id)
            .order_by(MailEvent.created_at.desc(), MailEvent.id.desc())
            .limit(limit)
        )
    )
