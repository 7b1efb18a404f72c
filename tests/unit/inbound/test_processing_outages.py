"""Processing outlives the database: a message it could not process stays stored, and the
inbound server's processing thread carries on, for a later sweep to finish the work."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter import handoff
from newsletter.cli.inbound import _Processor
from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.inbound import intake
from newsletter.models import InboundMessage, InboundStatus


def _unreachable(settings: Settings, tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    return settings.model_copy(update={"database_url": url})


def test_a_database_failure_leaves_the_message_stored_for_later(
    session: Session, settings: Settings, clock: FrozenClock, now: datetime, tmp_path: Path
) -> None:
    stored = intake.store(session, b"Subject: bounce\r\n\r\nhi\r\n", source="smtp", now=now)
    session.commit()
    assert stored is not None

    assert handoff.process_inbound(stored, _unreachable(settings, tmp_path), clock) == []

    session.expire_all()
    message = session.get(InboundMessage, stored)
    assert message is not None
    assert message.status == InboundStatus.RECEIVED
    assert handoff.process_pending_inbound(settings, clock) == 1
    session.expire_all()
    assert session.get(InboundMessage, stored).status == InboundStatus.PROCESSED  # type: ignore[union-attr]


def test_the_processing_thread_outlives_a_database_outage(
    settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    processor = _Processor(_unreachable(settings, tmp_path), clock)
    processor.ids.put(1)
    time.sleep(0.5)

    assert processor.thread.is_alive()
    processor.ids.put(None)
    processor.thread.join(timeout=10)
    assert not processor.thread.is_alive(), "a stop is seen while the database is away"
