"""How long a reader's own clicks are kept (lists with individual tracking only)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.models import ReaderClick


def purge_reader_clicks(session: Session, *, now: datetime, retention: timedelta) -> int:
    """Delete reader clicks older than ``retention``; per-link and per-edition counts stay."""
    result = session.execute(delete(ReaderClick).where(ReaderClick.clicked_at < now - retention))
    return affected_rows(result)
