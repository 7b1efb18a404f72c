"""How long a reader's own clicks are kept (lists with individual tracking only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.models import EngagedMessage, ReaderClick
from newsletter.subscriptions.clicks import detach


def purge_reader_clicks(session: Session, *, now: datetime, retention: timedelta) -> int:
    """Delete reader clicks older than ``retention``, and detach the messages those readers
    engaged with as long ago (a fresh random ref, no reader): per-link and per-edition counts,
    unique clickers included, stay. Returns how many clicks were deleted."""
    cutoff = now - retention
    result = session.execute(delete(ReaderClick).where(ReaderClick.clicked_at < cutoff))
    named = session.execute(
        select(EngagedMessage.edition_id, EngagedMessage.kind, EngagedMessage.ref).where(
            EngagedMessage.subscriber_id.is_not(None), EngagedMessage.created_at < cutoff
        )
    ).all()
    detach(session, [(edition_id, kind, ref) for edition_id, kind, ref in named])
    return affected_rows(result)
