from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.receipts import receipts_for


@pytest.fixture
def in_flight(session: Session) -> int:
    """Rows a stopped batch may leave unrecorded on this database: 1, or 2 on PostgreSQL,
    whose receipts are answered while the next message goes out."""
    return receipts_for(session, BatchRange(0, 0, 0)).in_flight
