"""What a returned message does to a reader: the bounce policy.

- A **hard** bounce (the address is dead) blocks the reader at once.
- A **soft** bounce (mailbox full, deferred then expired) adds to a score, at most once a
  day; the score halves every ``bounce_score_half_life_days`` and blocks the reader when it
  reaches ``bounce_score_threshold``.
- A **sender** bounce (our mail or reputation was refused: spam filters, policy, DMARC,
  rate limits) never counts against the reader; it is counted per receiving domain.
- A **complaint** unsubscribes the reader from every list and blocks the address.
- An **email unsubscribe** unsubscribes the reader from the list it names (all lists when it
  names none). The consent log says ``email`` when the reader mailed the request to us, or
  names the provider (``ses``, ``sendgrid``, ``mailgun``, ``postmark``) that reported it.

A signal acts only on a verified reader: one named by a signed VERP tag, a signed token or
Message-ID, an address a provider authenticated, or a From address our own mail server
authenticated. Anything else is recorded and ignored,
so a forged bounce blocks nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import (
    ConsentAction,
    MailEvent,
    MailEventKind,
    Subscriber,
    SubscriberStatus,
)
from newsletter.subscriptions import consent
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import unsubscribe, unsubscribe_all
from newsletter.subscriptions.service import find_subscriber

BLOCKED = "blocked"
SCORED = "scored"
COUNTED = "counted"
SUPPRESSED = "suppressed"
UNSUBSCRIBED = "unsubscribed"
RECORDED = "recorded"
IGNORED = "ignored"

# Sources of mail a reader sent us themselves: taken in by our server or read from a mailbox.
MAIL_SOURCES = ("smtp", "lmtp", "imap")


@dataclass(frozen=True)
class Signal:
    """One thing a returned message or provider event said about one address."""

    kind: MailEventKind
    address: str = ""
    category: str = ""  # hard, soft or sender, for bounces
    action: str = "failed"  # failed, delayed or delivered, for bounces
    status: str = ""
    reason: str = ""
    diagnostic: str = ""
    # The reader, when something signed names them (VERP tag, token, Message-ID).
    subscriber_id: int | None = None
    edition_id: int | None = None
    list_id: int | None = None
    # The address itself is authenticated (a provider's signed webhook): find the reader by it.
    address_trusted: bool = False


def _reader(session: Session, signal: Signal) -> Subscriber | None:
    if signal.subscriber_id is not None:
        return session.get(Subscriber, signal.subscriber_id)
    if signal.address_trusted and signal.address:
        return find_subscriber(session, signal.address)
    return None


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()[:255]


def apply(
    session: Session,
    signal: Signal,
    *,
    source: str,
    settings: Settings,
    now: datetime,
    inbound_message_id: int | None = None,
) -> MailEvent:
    """Record ``signal`` and apply it to its reader; returns the event, its outcome set."""
    reader = _reader(session, signal)
    address = signal.address or (reader.email if reader is not None else "")
    event = MailEvent(
        inbound_message_id=inbound_message_id,
        subscriber_id=reader.id if reader is not None else None,
        edition_id=signal.edition_id,
        list_id=signal.list_id,
        kind=signal.kind,
        category=signal.category,
        status=signal.status[:16],
        reason=signal.reason[:64],
        diagnostic=signal.diagnostic[:2000],
        address=address[:320],
        domain=_domain(address),
        source=source[:32],
        created_at=now,
    )
    event.outcome = _act(session, signal, reader, source, settings, now)
    session.add(event)
    session.flush()
    return event


def _act(
    session: Session,
    signal: Signal,
    reader: Subscriber | None,
    source: str,
    settings: Settings,
    now: datetime,
) -> str:
    if signal.kind == MailEventKind.BOUNCE and signal.category == "sender":
        # Our own mail was refused: counted per receiving domain, whoever the reader.
        return COUNTED
    if reader is None:
        return IGNORED
    # A provider's report is not the reader's email: the consent log says who told us.
    client = Client(source="email" if source in MAIL_SOURCES else source)
    if signal.kind == MailEventKind.BOUNCE:
        if signal.action != "failed":
            return RECORDED
        if signal.category == "hard":
            _block(session, reader, f"hard bounce {_what(signal)}", source, now)
            return BLOCKED
        if signal.category == "soft":
            return _score(session, reader, signal, source, settings, now)
        return RECORDED
    if signal.kind == MailEventKind.COMPLAINT:
        unsubscribe_all(session, reader.id, client=Client(source="complaint"), now=now)
        why = "complained (marked a message as spam)"
        # The reader's word, logged even when they were blocked already (they bounced, say).
        _record(session, reader, ConsentAction.COMPLAINT, why, source, now)
        _mark_blocked(reader, why, now)
        return SUPPRESSED
    if signal.kind == MailEventKind.UNSUBSCRIBE:
        if signal.list_id is not None:
            unsubscribe(session, reader.id, signal.list_id, client=client, now=now)
        else:
            unsubscribe_all(session, reader.id, client=client, now=now)
        return UNSUBSCRIBED
    return RECORDED


def _what(signal: Signal) -> str:
    words = " ".join(w for w in (signal.status, signal.reason.replace("_", " ")) if w)
    detail = signal.diagnostic.strip()[:200]
    return f"{words}: {detail}" if detail else words


def _block(session: Session, reader: Subscriber, why: str, source: str, now: datetime) -> None:
    if _mark_blocked(reader, why, now):
        _record(session, reader, ConsentAction.BLOCK, why, source, now)


def _mark_blocked(reader: Subscriber, why: str, now: datetime) -> bool:
    """Block the reader, keeping the first reason; False if they were blocked already."""
    if reader.status == SubscriberStatus.BLOCKED:
        return False
    reader.status = SubscriberStatus.BLOCKED
    reader.blocked_at = now
    reader.blocked_reason = why[:500]
    return True


def _record(
    session: Session, reader: Subscriber, action: ConsentAction, why: str, source: str,
    now: datetime,
) -> None:  # fmt: skip
    consent.record(
        session, action, email=reader.email, subscriber_id=reader.id, list_id=None,
        client=Client(source=source), now=now, detail=why[:500],
    )  # fmt: skip


def decayed_score(reader: Subscriber, settings: Settings, now: datetime) -> float:
    """The reader's bounce score as of ``now``: it halves every half-life."""
    if reader.bounce_scored_at is None or reader.bounce_score <= 0:
        return 0.0
    days = max((now - reader.bounce_scored_at).total_seconds(), 0.0) / 86400
    return float(reader.bounce_score * 0.5 ** (days / settings.bounce_score_half_life_days))


def _score(
    session: Session,
    reader: Subscriber,
    signal: Signal,
    source: str,
    settings: Settings,
    now: datetime,
) -> str:
    last = reader.bounce_scored_at
    if last is not None and last.date() == now.date():
        return RECORDED  # at most once a day: a daily digest to a full mailbox is one problem
    score = decayed_score(reader, settings, now) + settings.bounce_soft_score
    reader.bounce_score = score
    reader.bounce_scored_at = now
    if score >= settings.bounce_score_threshold:
        why = f"soft bounces, score {score:.1f} (last: {_what(signal)})"
        _block(session, reader, why, source, now)
        return BLOCKED
    return SCORED


def unblock(session: Session, reader: Subscriber, *, who: str, now: datetime) -> bool:
    """An operator lifts a block: mail resumes to the lists the reader is still on."""
    if reader.status != SubscriberStatus.BLOCKED:
        return False
    reader.status = SubscriberStatus.ACTIVE
    reader.bounce_score = 0.0
    reader.bounce_scored_at = None
    consent.record(
        session, ConsentAction.UNBLOCK, email=reader.email, subscriber_id=reader.id,
        list_id=None, client=Client(source=who), now=now,
        detail=f"was blocked: {reader.blocked_reason}"[:500],
    )  # fmt: skip
    reader.blocked_at = None
    reader.blocked_reason = ""
    session.flush()
    return True
