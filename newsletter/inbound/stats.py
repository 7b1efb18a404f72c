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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

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
    return outcomes_of_editions(session, [edition_id])[edition_id]


def outcomes_of_editions(
    session: Session, edition_ids: Sequence[int]
) -> dict[int, EditionOutcomes]:
    """:func:`edition_outcomes` of many editions at once: one query per kind of number,
    each grouped by edition, whatever the number of editions."""
    ids = list(dict.fromkeys(edition_ids))
    if not ids:
        return {}
    sent = (
        select(Delivery.edition_id, func.count())
        .where(Delivery.edition_id.in_(ids), Delivery.status == DeliveryStatus.SENT)
        .group_by(Delivery.edition_id)
    )
    delivered = {int(edition_id): int(n) for edition_id, n in session.execute(sent)}
    returned = _returned(session, ids)
    left = _unsubscribes(session, ids)

    def outcome(edition_id: int) -> EditionOutcomes:
        came_back = returned.get(edition_id, {})
        sources = left.get(edition_id, {})
        return EditionOutcomes(
            edition_id=edition_id,
            delivered=delivered.get(edition_id, 0),
            bounced_hard=came_back.get("hard", 0),
            bounced_soft=came_back.get("soft", 0),
            refused_sender=came_back.get("sender", 0),
            complaints=came_back.get("complaint", 0),
            unsubscribed_link=sum(n for s, n in sources.items() if s in LINK_SOURCES),
            unsubscribed_one_click=sources.get(ONE_CLICK_SOURCE, 0),
            unsubscribed_email=sum(
                n for s, n in sources.items() if s in (EMAIL_SOURCE, *PROVIDER_SOURCES)
            ),
        )

    return {edition_id: outcome(edition_id) for edition_id in ids}


def _returned(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    """Readers of each edition by what came back: "hard", "soft", "sender", "complaint"."""
    found: dict[int, dict[str, int]] = {}
    for name, query in (
        ("hard", _bounces("hard")),
        ("soft", _bounces("soft")),
        ("sender", _bounces("sender")),
        ("complaint", _complaints()),
    ):
        counted = (
            query.with_only_columns(
                MailEvent.edition_id, func.count(func.distinct(MailEvent.subscriber_id))
            )
            .where(MailEvent.edition_id.in_(ids))
            .group_by(MailEvent.edition_id)
        )
        for edition_id, n in session.execute(counted):
            if edition_id is not None:  # never, given the IN; mypy cannot know it
                found.setdefault(edition_id, {})[name] = int(n)
    return found


def _unsubscribes(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    """Readers of each edition who left its list before the next edition, by source."""
    following = aliased(Edition)
    next_send = (
        select(func.min(following.send_started_at))
        .where(
            following.list_id == Edition.list_id,
            following.frequency == Edition.frequency,
            following.send_started_at > Edition.send_started_at,
        )
        .correlate(Edition)
        .scalar_subquery()
    )
    query = (
        select(
            Delivery.edition_id,
            ConsentEvent.source,
            func.count(func.distinct(ConsentEvent.subscriber_id)),
        )
        .join(Edition, Edition.id == Delivery.edition_id)
        .join(
            ConsentEvent,
            (ConsentEvent.subscriber_id == Delivery.subscriber_id)
            & (ConsentEvent.list_id == Edition.list_id),
        )
        .where(
            Delivery.edition_id.in_(ids),
            Delivery.status == DeliveryStatus.SENT,
            Edition.send_started_at.is_not(None),
            ConsentEvent.action == ConsentAction.UNSUBSCRIBE,
            ConsentEvent.created_at >= Edition.send_started_at,
            or_(next_send.is_(None), ConsentEvent.created_at < next_send),
        )
        .group_by(Delivery.edition_id, ConsentEvent.source)
    )
    found: dict[int, dict[str, int]] = {}
    for edition_id, source, n in session.execute(query):
        found.setdefault(int(edition_id), {})[str(source)] = int(n)
    return found


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
