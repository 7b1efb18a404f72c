"""Storing returned mail before it is acknowledged.

Every way mail comes back (the SMTP/LMTP server, an IMAP mailbox, a provider's webhook)
first stores the message here and commits, then answers (250, a deleted IMAP message, 200).
Processing is a separate step (:func:`newsletter.inbound.process.process`), so a crash
between the two loses nothing, and processing is guarded so it happens once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.models import InboundMessage, InboundStatus


def store(
    session: Session,
    raw: bytes,
    *,
    source: str,
    now: datetime,
    envelope_from: str = "",
    recipients: Sequence[str] = (),
    external_id: str | None = None,
    status: InboundStatus = InboundStatus.RECEIVED,
    kind: str = "",
) -> int | None:
    """Store one message; its id, or None if ``(source, external_id)`` is stored already.

    Raises :class:`sqlalchemy.exc.IntegrityError` when a concurrent transaction stored the
    same ``(source, external_id)`` first.
    """
    if external_id is not None and is_stored(session, source, external_id):
        return None
    message = InboundMessage(
        source=source[:32],
        external_id=external_id[:255] if external_id is not None else None,
        envelope_from=envelope_from[:320],
        recipients="\n".join(r[:320] for r in recipients),
        raw=raw,
        size=len(raw),
        status=status,
        kind=kind,
        received_at=now,
        processed_at=now if status == InboundStatus.PROCESSED else None,
    )
    session.add(message)
    # A concurrent delivery of the same event raises IntegrityError here, for the caller to
    # roll back and answer as a duplicate. (No savepoint: SQLite's driver commits the first
    # one of a transaction when it is released, so nothing after it could roll it back.)
    session.flush()
    return message.id


def pending(session: Session, *, after_id: int = 0, limit: int = 100) -> list[int]:
    """Messages stored but not processed: left by a crash, or waiting for a worker."""
    return list(
        session.scalars(
            select(InboundMessage.id)
            .where(InboundMessage.status == InboundStatus.RECEIVED, InboundMessage.id > after_id)
            .order_by(InboundMessage.id)
            .limit(limit)
        )
    )


def purge_raw(session: Session, *, now: datetime, retention: timedelta) -> int:
    """Drop the raw bytes of messages older than ``retention``; their events stay."""
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.received_at < now - retention, InboundMessage.raw.is_not(None))
        .values(raw=None)
        .execution_options(synchronize_session=False)
    )
    return affected_rows(result)


def mark_failed(session: Session, message_id: int, error: str) -> None:
    session.execute(
        update(InboundMessage)
        # Only one not processed meanwhile (by a second server, or a poll alongside).
        .where(InboundMessage.id == message_id, InboundMessage.status == InboundStatus.RECEIVED)
        .values(status=InboundStatus.FAILED, error=error[:2000])
        .execution_options(synchronize_session=False)
    )


# A provider's one-time signature token (Mailgun's) is remembered as a row of its own source,
# "<provider>-token", so every web worker sees it and it outlives a restart. A token is
# needed only while its signature's timestamp is accepted (ten minutes either way); a day
# leaves room for clocks that drift.
SPENT_SOURCE_SUFFIX = "-token"
TOKENS_KEPT = timedelta(days=1)


def spend_token(session: Session, provider: str, token: str, *, now: datetime) -> bool:
    """Remember a signature's one-time ``token``; False if it was spent before.

    The row is ``processed`` from the start: it is no message, and no sweep may take it up.
    """
    stored = store(
        session, b"", source=provider + SPENT_SOURCE_SUFFIX, external_id=token, now=now,
        status=InboundStatus.PROCESSED, kind="token",
    )  # fmt: skip
    return stored is not None


def is_stored(session: Session, source: str, external_id: str) -> bool:
    """Whether the provider event ``(source, external_id)`` is stored already."""
    found = session.scalar(
        select(InboundMessage.id).where(
            InboundMessage.source == source, InboundMessage.external_id == external_id
        )
    )
    return found is not None


def forget_tokens(session: Session, *, now: datetime) -> int:
    """Drop the tokens spent more than :data:`TOKENS_KEPT` ago; their signatures are refused
    for their age by then."""
    result = session.execute(
        delete(InboundMessage)
        .where(
            InboundMessage.source.endswith(SPENT_SOURCE_SUFFIX),
            InboundMessage.received_at < now - TOKENS_KEPT,
        )
        .execution_options(synchronize_session=False)
    )
    return affected_rows(result)


def retry_failed(session: Session) -> int:
    """Put the messages whose processing failed back to ``received``, to be processed again
    (after a fix, say); how many. Their error is cleared: a second failure records its own."""
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.status == InboundStatus.FAILED)
        .values(status=InboundStatus.RECEIVED, error="")
        .execution_options(synchronize_session=False)
    )
    return affected_rows(result)
