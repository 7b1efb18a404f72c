"""Receipts: each claimed delivery's outcome, written the moment it is known.

A batch sends the rows of its claim in id order, and writes each row's outcome (sent,
failed, queued again, skipped, uncertain) in a commit of its own before it tries the next
message. So a worker that stops mid-group for any reason (killed, frozen, cut off) leaves
behind, under its claim, at most one row whose fate it did not record: the lowest of those
still ``sending``, the message that was in flight. Every row after it was never tried. The
reconciler relies on that (:mod:`newsletter.delivery.recovery`): it marks only that one row
uncertain and puts the rest back in the queue, so a frozen worker costs at most one
possible duplicate instead of a whole group.

Each write holds only where the row is still ``sending`` under the claim that sent it (the
fence): a receipt that changes nothing means the claim was revoked, and the batch stops.

The writes go over a connection of their own in autocommit mode, so a receipt is one
statement and one round trip, and the batch's session keeps its own transactions for
claims and lease renewals. They commit synchronously: a receipt lost in a database crash
would make a sent row look never tried, and the reconciler would send it again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import TracebackType
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, update
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.delivery.fanout import BatchRange
from newsletter.models import Delivery, DeliveryStatus

_DELIVERIES = cast(Table, Delivery.__table__)
log = logging.getLogger(__name__)

_HELD = and_(
    _DELIVERIES.c.id == bindparam("b_id"),
    _DELIVERIES.c.claim == bindparam("b_claim"),
    _DELIVERIES.c.status == DeliveryStatus.SENDING,
)
_SENT = (
    update(_DELIVERIES)
    .where(_HELD)
    .values(
        status=DeliveryStatus.SENT, claim=None, lease_until=None, last_error="",
        attempts=_DELIVERIES.c.attempts + 1, message_id=bindparam("b_message_id"),
        sent_at=bindparam("b_at"), updated_at=bindparam("b_at"),
    )
)  # fmt: skip
_SETTLED = (
    update(_DELIVERIES)
    .where(_HELD)
    .values(
        status=bindparam("b_status"), claim=None, lease_until=None,
        last_error=bindparam("b_error"), attempts=bindparam("b_attempts"),
        message_id=bindparam("b_message_id"), updated_at=bindparam("b_at"),
    )
)  # fmt: skip
_MINE = and_(
    _DELIVERIES.c.edition_id == bindparam("b_edition"),
    _DELIVERIES.c.id.between(bindparam("b_first"), bindparam("b_last")),
    _DELIVERIES.c.claim == bindparam("b_claim"),
)
_RELEASED = (
    update(_DELIVERIES)
    .where(_MINE, _DELIVERIES.c.status == DeliveryStatus.SENDING)
    .values(
        status=DeliveryStatus.QUEUED, claim=None, lease_until=None,
        last_error=bindparam("b_error"), updated_at=bindparam("b_at"),
    )
)  # fmt: skip
_UNRESERVED = (
    update(_DELIVERIES)
    .where(_MINE, _DELIVERIES.c.status == DeliveryStatus.QUEUED)
    .values(claim=None, lease_until=None)
)


class Receipts:
    """The outcome writer of one batch: open it around the batch's sending."""

    def __init__(self, session: Session, scope: BatchRange) -> None:
        self._engine = session.get_bind().engine
        self._scope = {"b_edition": scope.edition_id, "b_first": scope.first_id,
                       "b_last": scope.last_id}  # fmt: skip
        self._connection: Connection | None = None

    def __enter__(self) -> Receipts:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._connection = connection
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _write(self, statement: Any, values: dict[str, object]) -> int:
        assert self._connection is not None, "receipts are written inside `with Receipts(...)`"
        return affected_rows(self._connection.execute(statement, values))

    def sent(self, claim: str, delivery_id: int, message_id: str, at: datetime) -> bool:
        """The server accepted the message; False if the claim was revoked meanwhile."""
        values = {"b_id": delivery_id, "b_claim": claim, "b_message_id": message_id, "b_at": at}
        return self._fenced(claim, delivery_id, self._write(_SENT, values), sent=True)

    def settled(
        self,
        claim: str,
        delivery_id: int,
        status: DeliveryStatus,
        *,
        attempts: int,
        error: str,
        message_id: str | None,
        at: datetime,
    ) -> bool:
        """Failed, skipped, uncertain or back in the queue; False if the claim was revoked."""
        values = {
            "b_id": delivery_id, "b_claim": claim, "b_status": status, "b_error": error,
            "b_attempts": attempts, "b_message_id": message_id, "b_at": at,
        }  # fmt: skip
        return self._fenced(claim, delivery_id, self._write(_SETTLED, values), sent=False)

    def release(self, claim: str, error: str, at: datetime) -> int:
        """Put the rows the claim is sending back in the queue, untried; returns how many."""
        values = {**self._scope, "b_claim": claim, "b_error": error, "b_at": at}
        return self._write(_RELEASED, values)

    def unreserve(self, claim: str) -> int:
        """Free the queued rows the claim reserved and did not get to; returns how many."""
        return self._write(_UNRESERVED, {**self._scope, "b_claim": claim})

    @staticmethod
    def _fenced(claim: str, delivery_id: int, written: int, *, sent: bool) -> bool:
        if written:
            return True
        log.warning(
            "claim %s was revoked: the outcome of delivery %s was not recorded%s",
            claim, delivery_id, " (its message was sent)" if sent else "",
        )  # fmt: skip
        return False


__all__ = ["Receipts"]
