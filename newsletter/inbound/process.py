"""From a stored returned message to the signals it carries, applied once.

Who a message is about is taken only from what we signed: the VERP tag of the address it
came back to, the tag in the returned original's Return-Path, our signed Message-ID in the
quoted original, or the token of an unsubscribe link. The addresses a bounce *says* failed
are recorded, never trusted to find a reader: anyone can write a bounce for any address.
An email unsubscribe request without a token is taken from its From address, as mailing
lists have always done, but only when our own mail server authenticated that address (DMARC,
or an aligned DKIM signature, in its Authentication-Results): a From header is as easy to
forge as a bounce.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parseaddr

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import affected_rows
from newsletter.delivery.message_ids import delivery_of_message_id
from newsletter.delivery.verp import DIGEST, ReturnPath, Tag
from newsletter.inbound import breaker, intake
from newsletter.inbound.authresults import authenticated_from
from newsletter.inbound.classify import Report, categorise, classify, failure_status
from newsletter.inbound.policy import Signal, apply
from newsletter.models import (
    Delivery,
    Edition,
    InboundMessage,
    InboundStatus,
    MailEvent,
    MailEventKind,
)
from newsletter.subscriptions.readers import link_is_foreign
from newsletter.subscriptions.service import find_subscriber
from newsletter.subscriptions.tokens import UNSUBSCRIBE, InvalidToken, read_token

# Headers a mailbox provider keeps the envelope recipient in (IMAP intake has no envelope).
_ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")
# itsdangerous tokens: base64url payload "." signature.
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{20,}")


@dataclass(frozen=True)
class Reader:
    """Whose message came back, as far as something signed says."""

    subscriber_id: int | None = None
    edition_id: int | None = None
    list_id: int | None = None
    # Why the reader the message itself names was not taken ("unauthenticated"): recorded
    # as the reason of its ignored event, for an operator wondering why nothing happened.
    distrusted: str = ""


def process(session: Session, message_id: int, *, settings: Settings, now: datetime) -> list[int]:
    """Classify a stored message and apply its signals; idempotent.

    Returns the ids of the editions it touched (for the circuit breaker). The status moves
    from ``received`` in the same transaction as the events, so a second run, or a
    concurrent one, does nothing.
    """
    taken = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message_id, InboundMessage.status == InboundStatus.RECEIVED)
        .values(status=InboundStatus.PROCESSED, processed_at=now)
        .execution_options(synchronize_session=False)
    )
    if not affected_rows(taken):
        return []
    message = session.get(InboundMessage, message_id)
    if message is None or message.raw is None:
        return []
    recipients = [r for r in message.recipients.splitlines() if r]
    to_unsubscribe = any(_same(r, settings.unsubscribe_mailbox) for r in recipients)
    report = classify(message.raw, addressed_to_unsubscribe=to_unsubscribe)
    message.kind = report.kind
    if report.defects:
        message.error = "; ".join(report.defects)[:2000]
    reader = _reader(session, report, message, recipients, settings)
    editions: set[int] = set()
    for signal in signals(report, reader, bare_bounce=_null_sender(message)):
        event = apply(
            session, signal, source=message.source, settings=settings, now=now,
            inbound_message_id=message.id,
        )  # fmt: skip
        if event.edition_id is not None and event.outcome != "ignored":
            editions.add(event.edition_id)
    session.flush()
    return sorted(editions)


def record_provider_event(
    session: Session,
    raw: bytes,
    signals: Iterable[Signal],
    *,
    source: str,
    external_id: str,
    settings: Settings,
    now: datetime,
) -> list[int] | None:
    """Store one provider webhook event and apply its signals, in one transaction.

    Returns the ids of the editions it touched, or None if that event (by the provider's
    id) was recorded before: providers deliver webhooks at least once.
    """
    message_id = intake.store(session, raw, source=source, now=now, external_id=external_id)
    if message_id is None:
        return None
    editions: set[int] = set()
    kinds = set()
    for signal in signals:
        event = apply(
            session, signal, source=source, settings=settings, now=now,
            inbound_message_id=message_id,
        )  # fmt: skip
        kinds.add(event.kind.value)
        if event.edition_id is not None and event.outcome != "ignored":
            editions.add(event.edition_id)
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == message_id)
        .values(status=InboundStatus.PROCESSED, processed_at=now, kind=",".join(sorted(kinds)))
        .execution_options(synchronize_session=False)
    )
    return sorted(editions)


def record_refusals(
    session: Session,
    edition_id: int | None,
    refused: Iterable[tuple[int, str]],
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Readers the server refused at once (5xx to RCPT or DATA): bounces without the mail,
    of an edition or, with ``edition_id`` None, of a confirmation or welcome notice.

    The reader is known from the ledger, so the reply alone decides: a dead address blocks,
    a refusal of our mail is counted against our own reputation, never the reader's.
    """
    list_id = None if edition_id is None else _list_of(session, edition_id)
    for subscriber_id, reply in refused:
        signal = replace(
            _refusal(reply), subscriber_id=subscriber_id,
            edition_id=edition_id if list_id is not None else None, list_id=list_id,
        )  # fmt: skip
        apply(session, signal, source="smtp-reply", settings=settings, now=now)


def _refusal(reply: str) -> Signal:
    """A server's refusal at send time, read as a bounce: the reply alone decides."""
    category, reason = categorise("", reply)
    return Signal(
        MailEventKind.BOUNCE, category=category, reason=reason, diagnostic=reply[:500],
        status=failure_status(reply),
    )  # fmt: skip


def trip_breakers(
    session: Session, edition_ids: Iterable[int], *, settings: Settings, now: datetime
) -> list[int]:
    """Pause the editions among ``edition_ids`` whose bounces or complaints are too many."""
    return [e for e in edition_ids if breaker.check(session, e, settings=settings, now=now)]


def signals(report: Report, reader: Reader, *, bare_bounce: bool = False) -> list[Signal]:
    """What ``report`` says, about ``reader``."""
    return [
        replace(
            signal,
            subscriber_id=reader.subscriber_id,
            edition_id=reader.edition_id,
            list_id=reader.list_id,
            reason=signal.reason or reader.distrusted,
        )
        for signal in _said(report, bare_bounce=bare_bounce and reader.subscriber_id is not None)
    ]


def _said(report: Report, *, bare_bounce: bool) -> list[Signal]:
    if report.kind == "bounce" or (report.kind == "other" and bare_bounce):
        if not report.recipients:
            # It came back to a signed address but says nothing we can read: count it as a
            # temporary problem, never as a dead address.
            return [Signal(MailEventKind.BOUNCE, category="soft", reason="unparsed")]
        return [
            Signal(
                MailEventKind.BOUNCE,
                address=r.address,
                category=r.category,
                action=r.action,
                status=r.status,
                reason=r.reason,
                diagnostic=r.diagnostic,
            )
            for r in report.recipients
        ]
    if report.kind == "complaint":
        return [
            Signal(
                MailEventKind.COMPLAINT,
                address=report.original_recipient,
                reason=report.feedback_type,
            )
        ]
    if report.kind == "unsubscribe":
        return [Signal(MailEventKind.UNSUBSCRIBE, address=report.from_address)]
    kind = MailEventKind(report.kind)
    return [Signal(kind, address=report.from_address if kind != MailEventKind.OTHER else "")]


def _null_sender(message: InboundMessage) -> bool:
    """Whether it came with the null envelope sender (``MAIL FROM:<>``) that marks mail
    servers' reports; known only for mail taken over SMTP or LMTP (not from a mailbox)."""
    return message.source in ("smtp", "lmtp") and message.envelope_from == ""


def _same(address: str, mailbox: str) -> bool:
    return address.strip().strip("<>").lower() == mailbox.lower()


def _reader(
    session: Session,
    report: Report,
    message: InboundMessage,
    recipients: list[str],
    settings: Settings,
) -> Reader:
    if report.kind == "unsubscribe":
        return _unsubscriber(session, report, message.raw or b"", settings)
    tag = _tag(report, message, recipients, settings)
    if tag is not None:
        if tag.kind == DIGEST and tag.edition_id is not None:
            return _from_edition(session, tag.edition_id, tag.subscriber_id)
        return Reader(subscriber_id=tag.subscriber_id)
    if report.original_message_id:
        return reader_of_message_id(session, settings, report.original_message_id)
    return Reader()


def _tag(
    report: Report, message: InboundMessage, recipients: list[str], settings: Settings
) -> Tag | None:
    return_path = ReturnPath.parse(settings.bounce_address, settings.secret_key)
    if return_path is None:
        return None
    candidates = [*recipients, *_envelope_headers(message.raw or b"")]
    if report.original_mail_from:
        candidates.append(report.original_mail_from)
    for candidate in candidates:
        tag = return_path.tag_of(parseaddr(candidate)[1] or candidate)
        if tag is not None:
            return tag
    return None


def _envelope_headers(raw: bytes) -> list[str]:
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0][:65536]
    found: list[str] = []
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in _ENVELOPE_HEADERS:
            found.extend(v.strip() for v in value.split(","))
    return found


def _list_of(session: Session, edition_id: int) -> int | None:
    return session.scalar(select(Edition.list_id).where(Edition.id == edition_id))


def _from_edition(session: Session, edition_id: int, subscriber_id: int) -> Reader:
    list_id = _list_of(session, edition_id)
    if list_id is None:  # the edition was deleted since: the reader is still known
        return Reader(subscriber_id=subscriber_id)
    return Reader(subscriber_id, edition_id, list_id)


def _unsubscriber(session: Session, report: Report, raw: bytes, settings: Settings) -> Reader:
    for token in _TOKEN.findall(f"{report.subject}\n{report.body_text}"):
        try:
            named = read_token(settings.secret_key, UNSUBSCRIBE, token)
        except InvalidToken:
            continue
        if not link_is_foreign(session, named.subscriber_id, named.key):
            return Reader(subscriber_id=named.subscriber_id, list_id=named.list_id)
    if report.from_address:
        if not authenticated_from(raw, report.from_address, settings.inbound_authserv_id):
            return Reader(distrusted="unauthenticated")
        subscriber = find_subscriber(session, report.from_address)
        if subscriber is not None:
            return Reader(subscriber_id=subscriber.id)
    return Reader()


def events_of(session: Session, message_id: int) -> list[MailEvent]:
    return list(
        session.scalars(
            select(MailEvent)
            .where(MailEvent.inbound_message_id == message_id)
            .order_by(MailEvent.id)
        )
    )


def reader_of_message_id(session: Session, settings: Settings, message_id: str) -> Reader:
    """Whose delivery one of our signed Message-IDs names (quoted in a bounce, or passed back
    by a provider's webhook); an empty Reader when it does not verify or names no delivery."""
    named = delivery_of_message_id(settings.secret_key, message_id)
    if named is None:
        return Reader()
    delivery = session.get(Delivery, named[1])
    if delivery is None or delivery.edition_id != named[0]:
        return Reader()
    return _from_edition(session, delivery.edition_id, delivery.subscriber_id)
