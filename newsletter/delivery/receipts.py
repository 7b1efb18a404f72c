"""Receipts: each claimed delivery's outcome, written the moment it is known.

A batch sends the rows of its claim in id order, and writes each row's outcome (sent,
failed, queued again, skipped, uncertain) in a commit of its own before it tries the next
message. So a worker that stops mid-group for any reason (killed, frozen, cut off) leaves
behind, under its claim, only its message in flight unrecorded: the lowest of the rows still
``sending``. Every row after it was never tried. The reconciler relies on that
(:mod:`newsletter.delivery.recovery`): it marks only that row uncertain and puts the rest
back in the queue, so a frozen worker costs at most one possible duplicate instead of a
whole group.

Each write holds only where the row is still ``sending`` under the claim that sent it (the
fence): a receipt that changes nothing means the claim was revoked, and the batch stops.

The writes go over a connection of their own in autocommit mode, so a receipt is one
statement, and the batch's session keeps its own transactions for claims and lease
renewals.

On PostgreSQL a ``sent`` receipt is not waited for (:class:`PipelinedReceipts`): it goes to
the server, which commits it whatever the worker does next, the next message goes out, and
only then is its answer read. That keeps the database off the sending path, at the price of
a second row that may be in flight: ``in_flight`` says how many, and the claim token carries
it for the reconciler (:meth:`newsletter.delivery.lease.Lease.start`). Receipts commit
durably (``synchronous_commit`` as the server has it): one lost in a crash would make a sent
row look never tried, and the reconciler would send it again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import TracebackType
from typing import Any, cast

import psycopg
from psycopg import pq
from sqlalchemy import Connection, Table, and_, bindparam, update
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.marks import MarksUnavailable, ProgressMarks
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

    # Rows of a stopped run whose outcome may have happened unrecorded; None: all of them.
    in_flight: int | None = 1
    # Whether a progress mark in Redis says how far the run got (:mod:`..marks`).
    marked = False

    def __init__(self, session: Session, scope: BatchRange) -> None:
        self._engine = session.get_bind().engine
        self._scope = {"b_edition": scope.edition_id, "b_first": scope.first_id,
                       "b_last": scope.last_id}  # fmt: skip
        self._connection: Connection | None = None
        self.fenced = 0  # outcomes a revoked claim could not record

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
        self._close()

    def begin(self, claim: str) -> bool:
        """The run's claim is about to reserve rows; False if it cannot record as its token
        says (marks without a Redis), and the run takes another."""
        return True

    @property
    def lost_marks(self) -> bool:
        """The run lost its progress marks mid-way: after this group, the rest of its range
        goes under a fresh claim that says how it records (:meth:`switched`)."""
        return False

    def switched(self) -> None:
        """The run has taken a claim that records each outcome in the database."""

    def _close(self, *, discard: bool = False) -> None:
        """Give the connection back to the pool, or (``discard``) close it for good."""
        if self._connection is not None:
            if discard:
                self._connection.invalidate()
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

    def flush(self) -> bool:
        """Wait for any receipt still on its way; False if it found the claim revoked."""
        return True

    def _fenced(self, claim: str, delivery_id: int, written: int, *, sent: bool) -> bool:
        if written:
            return True
        self.fenced += 1
        log.warning(
            "claim %s was revoked: the outcome of delivery %s was not recorded%s",
            claim, delivery_id, " (its message was sent)" if sent else "",
        )  # fmt: skip
        return False

    def release(self, claim: str, error: str, at: datetime) -> int:
        """Put the rows the claim is sending back in the queue, untried; returns how many."""
        values = {**self._scope, "b_claim": claim, "b_error": error, "b_at": at}
        return self._write(_RELEASED, values)

    def unreserve(self, claim: str) -> int:
        """Free the queued rows the claim reserved and did not get to; returns how many."""
        return self._write(_UNRESERVED, {**self._scope, "b_claim": claim})


class PipelinedReceipts(Receipts):
    """PostgreSQL (psycopg): a ``sent`` receipt is answered while the next message goes out.

    At most one receipt is on its way; every other write waits for it first, so receipts
    still land in order. Its answer is read before the next ``sent`` receipt, or by
    :meth:`flush`: a fenced receipt is reported one message late, which is why a run stopped
    or revoked has up to two rows in flight.
    """

    in_flight = 2

    _SENT_NAME = b"newsletter_receipt_sent"
    # ``_SENT`` in the server's own terms: libpq's asynchronous API takes SQL text.
    _SENT_SQL = (
        b"UPDATE deliveries SET status = 'sent', claim = NULL, lease_until = NULL,"
        b" last_error = '', attempts = attempts + 1, message_id = $3, sent_at = $4,"
        b" updated_at = $4 WHERE id = $1 AND claim = $2 AND status = 'sending'"
    )

    def __enter__(self) -> Receipts:
        super().__enter__()
        assert self._connection is not None
        self._pending: tuple[str, int] | None = None
        self._pg = self._connection.connection.driver_connection.pgconn  # type: ignore[union-attr]
        # Planned once per batch; deallocated on the way out, as the connection is pooled.
        try:
            self._pg.send_prepare(self._SENT_NAME, self._SENT_SQL)
            self._answers(f"preparing {self._SENT_NAME.decode()}")
        except BaseException:
            self._close(discard=True)  # it may hold the prepared statement or an answer
            raise
        self._claim, self._token = "", b""  # one claim per batch run: encoded once
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            if exc is not None:  # an answer may still be on the wire: not for reuse
                self._close(discard=True)
                return
            try:
                self.flush()
                self._connection.exec_driver_sql(f"DEALLOCATE {self._SENT_NAME.decode()}")
            except BaseException:
                self._close(discard=True)
                raise
        super().__exit__(exc_type, exc, tb)

    def sent(self, claim: str, delivery_id: int, message_id: str, at: datetime) -> bool:
        recorded = self.flush()
        if claim != self._claim:
            self._claim, self._token = claim, claim.encode()
        params = [
            str(delivery_id).encode(), self._token, message_id.encode(), at.isoformat().encode()
        ]  # fmt: skip
        self._pg.send_query_prepared(self._SENT_NAME, params)
        self._pending = (claim, delivery_id)
        return recorded

    def flush(self) -> bool:
        if self._pending is None:
            return True
        claim, delivery_id = self._pending
        self._pending = None
        written = self._answers(f"recording delivery {delivery_id}")
        return self._fenced(claim, delivery_id, written, sent=True)

    def _answers(self, what: str) -> int:
        """Wait for the answer to what was sent; returns the rows it changed."""
        written = 0
        while (result := self._pg.get_result()) is not None:
            if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
                message = (result.error_message or b"").decode(errors="replace")
                raise psycopg.OperationalError(f"{what}: {message}")
            written += result.command_tuples or 0
        return written

    def _write(self, statement: Any, values: dict[str, object]) -> int:
        if not self.flush():
            return 0  # the claim is gone: nothing of it can be written
        return super()._write(statement, values)


class GroupReceipts(Receipts):
    """``delivery_receipts = "group"``: sent outcomes are kept until the group ends and written
    in one transaction, as one statement per row sent together.

    Cheaper than a transaction per message, but until the group is written any of its sent
    rows may be unrecorded: a stopped run's whole group counts uncertain (``in_flight`` None).
    Other outcomes, rare, are still written at once.
    """

    in_flight: int | None = None

    # On PostgreSQL the group is one statement over arrays: one plan and one pass, where a
    # statement per row costs the server several times the CPU.
    _SENT_ALL_PG = (
        "UPDATE deliveries SET status = 'sent', claim = NULL, lease_until = NULL,"
        " last_error = '', attempts = deliveries.attempts + 1, message_id = u.message_id,"
        " sent_at = u.at, updated_at = u.at"
        " FROM unnest(%(ids)s::integer[], %(message_ids)s::text[], %(ats)s::timestamptz[])"
        " AS u(id, message_id, at)"
        " WHERE deliveries.id = u.id AND deliveries.claim = %(claim)s"
        " AND deliveries.status = 'sending'"
    )

    def __enter__(self) -> Receipts:
        self._connection = self._engine.connect()  # transactions: the group in one commit
        self._arrays = self._engine.dialect.driver == "psycopg"
        self._sent: list[dict[str, object]] = []
        self._claim = ""
        return self

    def sent(self, claim: str, delivery_id: int, message_id: str, at: datetime) -> bool:
        self._claim = claim
        self._sent.append(
            {"b_id": delivery_id, "b_claim": claim, "b_message_id": message_id, "b_at": at}
        )
        return True

    def flush(self) -> bool:
        if not self._sent:
            return True
        assert self._connection is not None
        rows, self._sent = self._sent, []
        if self._arrays:
            arrays = {
                "ids": [row["b_id"] for row in rows], "claim": self._claim,
                "message_ids": [row["b_message_id"] for row in rows],
                "ats": [row["b_at"] for row in rows],
            }  # fmt: skip
            written = affected_rows(self._connection.exec_driver_sql(self._SENT_ALL_PG, arrays))
        else:
            written = affected_rows(self._connection.execute(_SENT, rows))
        self._connection.commit()
        if written == len(rows):
            return True
        self.fenced += len(rows) - written
        log.warning(
            "claim %s was revoked: %s of its sent deliveries were not recorded (%s)",
            self._claim, len(rows) - written, [row["b_id"] for row in rows][:20],
        )  # fmt: skip
        return False

    def _write(self, statement: Any, values: dict[str, object]) -> int:
        recorded = self.flush()
        written = super()._write(statement, values)
        assert self._connection is not None
        self._connection.commit()
        return written if recorded else 0


class MarkedReceipts(GroupReceipts):
    """``delivery_receipts = "marks"``: sent outcomes go to the database once per group, and
    a progress mark in Redis says after each message how far the claim got
    (:mod:`newsletter.delivery.marks`).

    The mark is set after the server accepted a message and answered while the next one goes
    out, so a stopped run leaves up to two rows past its mark that may have been sent
    (``in_flight``), as :class:`PipelinedReceipts` does. If Redis stops answering, the group
    so far is written to the database at once and every later message is recorded there
    before the next (``degraded``): whatever mark is left behind is then behind the
    database, which the reconciler's reading of it allows.
    """

    in_flight = 2
    marked = True

    def __init__(self, session: Session, scope: BatchRange, marks: ProgressMarks) -> None:
        super().__init__(session, scope)
        self._marks = marks
        self._mark_claim: str | None = None
        self.degraded = False

    def begin(self, claim: str) -> bool:
        try:
            self._marks.begin(claim)
        except MarksUnavailable as error:
            self._degrade(error, claim)
            return False
        self._mark_claim = claim
        return True

    @property
    def lost_marks(self) -> bool:
        return self.degraded and self._mark_claim is not None

    def switched(self) -> None:
        self._mark_claim = None  # its mark is behind the database: left to expire

    def _degrade(self, error: MarksUnavailable, claim: str | None) -> None:
        log.warning(
            "progress marks unavailable (%s): claim %s records each message in the database",
            error, claim,
        )  # fmt: skip
        self.degraded = True

    def sent(self, claim: str, delivery_id: int, message_id: str, at: datetime) -> bool:
        super().sent(claim, delivery_id, message_id, at)
        if not self.degraded:
            try:
                self._marks.advance(claim, delivery_id)
                return True
            except MarksUnavailable as error:
                self._degrade(error, claim)
        return self.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                # Every outcome is in the database: the mark is done with.
                self.flush()
                if self._mark_claim is not None and not self.degraded:
                    self._marks.end(self._mark_claim)
            elif isinstance(exc, Exception):  # not on the way out of the process
                self._flush_known(exc)
        finally:
            try:
                self._marks.close()
            finally:
                super().__exit__(exc_type, exc, tb)

    def _flush_known(self, exc: BaseException) -> None:
        """A run that raised (not for the database, say a time limit) still writes the
        outcomes it knows, rather than leave them to its mark; the mark stays, for the
        reconciler, should this fail too."""
        known = len(self._sent)  # flush() empties the list before it writes
        if not known or self._connection is None:
            return
        try:
            self.flush()
        except Exception as error:  # the original exception is the one to raise
            log.warning(
                "after %r, %s sent outcomes of claim %s were left to its progress mark: %s",
                exc, known, self._claim, error,
            )  # fmt: skip


def receipts_for(
    session: Session, scope: BatchRange, mode: str = "marks", marks: ProgressMarks | None = None
) -> Receipts:
    """The receipts writer for ``delivery_receipts`` and this install: progress marks in Redis
    with a write per group, one write per group alone, or a receipt per message (pipelined on
    PostgreSQL via psycopg), which is also what ``marks`` falls back to without a Redis."""
    if mode == "group":
        return GroupReceipts(session, scope)
    if mode == "marks" and marks is not None:
        return MarkedReceipts(session, scope, marks)
    if session.get_bind().engine.dialect.driver == "psycopg":
        return PipelinedReceipts(session, scope)
    return Receipts(session, scope)


__all__ = ["GroupReceipts", "MarkedReceipts", "PipelinedReceipts", "Receipts", "receipts_for"]
