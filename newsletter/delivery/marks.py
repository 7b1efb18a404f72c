"""Progress marks: how far a claim has got, kept in Redis as each message is accepted.

With ``delivery_receipts = "marks"`` (the default wherever there is a Redis) a batch writes
its sent outcomes to the database once per group, and after each message the server accepts
it sets ``newsletter:claim:<token>`` to that delivery's id. One Redis command per message,
whose answer is read while the next message goes out, costs a fraction of a database
transaction, and leaves the reconciler what a per-message receipt would: of a stopped
claim's rows still ``sending``, those up to the mark were accepted (recorded as sent), the
next two may have been (uncertain), and the rest were never tried (queued again).

Failures, skips and the like are still written to the database at once, before the next
message, so a row up to the mark that is still ``sending`` can only have been accepted.

A missing mark (Redis restarted without its data, or the key expired) leaves the reconciler
knowing nothing: the claim's rows still ``sending`` all count as uncertain, as with
``delivery_receipts = "group"``. So does a mark written by another Redis process than the
one answering now: each mark carries the ``run_id`` of the server that took it, because a
Redis restarted from a snapshot, or a replica promoted after a failover, may hold an older
value of the mark, and rows past an old mark may have been sent.

A worker that loses Redis mid-group writes what it has to the database and records each
later message of the group there before the next: so a mark left behind is behind the
database, never ahead of what was recorded. After the group it takes the rest of its range
under a fresh claim whose token says how it records (``r1-``), and sends on.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Sequence
from typing import Any, cast

import redis

__all__ = [
    "MARK_TTL_S", "MarksUnavailable", "ProgressMarks", "RedisMarks", "close_clients", "marks_for",
]  # fmt: skip

log = logging.getLogger(__name__)

PREFIX = "newsletter:claim:"
# Long enough for an operator to reconcile after a weekend; a finished run deletes its mark.
MARK_TTL_S = 7 * 24 * 3600
# A mark that takes longer than this to answer is given up: the batch goes on with
# per-message database receipts rather than hang on a Redis it cannot reach. Redis answers
# in well under a millisecond; a stall longer than this eats into the batch's lease.
TIMEOUT_S = 0.5


class MarksUnavailable(RuntimeError):
    """Redis did not take or give a mark; the message says why."""


class ProgressMarks:
    """Where a batch records, and the reconciler reads, each claim's last accepted delivery.

    One object per batch run (not shared between threads): at most one :meth:`advance` is
    unanswered at any time.
    """

    def begin(self, claim: str) -> None:
        """Start the claim's mark at 0 (nothing accepted), answered before any message."""
        raise NotImplementedError

    def advance(self, claim: str, delivery_id: int) -> None:
        """Move the mark to ``delivery_id``: sent now, answered at the next call."""
        raise NotImplementedError

    def settle(self) -> None:
        """Wait for the answer still owed, if any."""
        raise NotImplementedError

    def end(self, claim: str) -> None:
        """Drop a finished claim's mark (its outcomes are all in the database)."""
        raise NotImplementedError

    def read(self, claims: Sequence[str]) -> dict[str, int | None]:
        """Each claim's mark; None where there is none, or where the server that took it is
        not the one answering now."""
        raise NotImplementedError

    def close(self) -> None:
        """Give back what the marks hold (a connection)."""


class RedisMarks(ProgressMarks):
    """Marks in Redis, over one connection of their own for :meth:`advance`'s pipelining."""

    def __init__(self, client: redis.Redis, *, ttl_s: int = MARK_TTL_S) -> None:
        self._client = client
        self._ttl = str(ttl_s * 1000)
        self._stamp = b""  # b"<run_id>:" of the server the run's marks go to
        # redis-py's Connection: untyped, hence Any. Held for the run, for the pipelining.
        self._connection: Any = None
        self._owed = False

    def _link(self) -> Any:
        if self._connection is None:
            self._connection = self._client.connection_pool.get_connection()
        return self._connection

    def _fail(self, what: str, error: Exception) -> MarksUnavailable:
        # The connection may hold half a command or an answer: never reused.
        if self._connection is not None:
            self._connection.disconnect()
            self._client.connection_pool.release(self._connection)
            self._connection = None
        self._owed = False
        return MarksUnavailable(f"{what}: {error}")

    def _run_id(self) -> bytes:
        info = cast(dict[str, Any], self._client.info("server"))
        return str(info["run_id"]).encode()

    def begin(self, claim: str) -> None:
        self.settle()
        try:
            self._stamp = self._run_id() + b":"
            link = self._link()
            link.send_command("SET", PREFIX + claim, self._stamp + b"0", "PX", self._ttl)
            link.read_response()
        except (redis.RedisError, OSError) as error:
            raise self._fail(f"starting the mark of claim {claim}", error) from error

    def advance(self, claim: str, delivery_id: int) -> None:
        self.settle()
        mark = self._stamp + str(delivery_id).encode()
        try:
            self._link().send_command("SET", PREFIX + claim, mark, "PX", self._ttl)
        except (redis.RedisError, OSError) as error:
            raise self._fail(f"marking delivery {delivery_id}", error) from error
        self._owed = True

    def settle(self) -> None:
        if not self._owed:
            return
        self._owed = False
        try:
            assert self._connection is not None
            self._connection.read_response()
        except (redis.RedisError, OSError) as error:
            raise self._fail("reading a mark's answer", error) from error

    def end(self, claim: str) -> None:
        try:
            self.settle()
            self._client.delete(PREFIX + claim)
        except (MarksUnavailable, redis.RedisError, OSError) as error:
            log.info("the mark of claim %s stays until it expires: %s", claim, error)

    def read(self, claims: Sequence[str]) -> dict[str, int | None]:
        if not claims:
            return {}
        try:
            values = cast(list[bytes | None], self._client.mget([PREFIX + c for c in claims]))
            run_id = self._run_id()
        except (redis.RedisError, OSError) as error:
            raise MarksUnavailable(f"reading progress marks: {error}") from error
        marks: dict[str, int | None] = {}
        for claim, value in zip(claims, values, strict=True):
            taken_by, _, mark = (value or b"").rpartition(b":")
            if value is not None and taken_by != run_id:
                log.warning(
                    "the mark of claim %s was taken by another Redis process (%s, now %s): "
                    "it may be older than the claim's progress, so it is not used",
                    claim, taken_by.decode(errors="replace"), run_id.decode(),
                )  # fmt: skip
            marks[claim] = int(mark) if value is not None and taken_by == run_id else None
        return marks

    def close(self) -> None:
        if self._connection is not None:
            if self._owed:  # an answer is still on the wire: not for reuse
                self._connection.disconnect()
            self._client.connection_pool.release(self._connection)
            self._connection = None
        self._owed = False


_CLIENTS: dict[str, redis.Redis] = {}
_CLIENTS_LOCK = threading.Lock()


def marks_for(redis_url: str) -> ProgressMarks | None:
    """Marks on the install's Redis (one client per process, whose pool survives a fork), or
    None where there is no Redis (the in-process hand-off)."""
    if not redis_url:
        return None
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(redis_url)
        if client is None:
            client = _CLIENTS[redis_url] = redis.Redis.from_url(
                redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
            )
    return RedisMarks(client)


@atexit.register
def close_clients() -> None:
    """Hang up on the Redis servers the marks went to, rather than leave it to the collector."""
    with _CLIENTS_LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        client.close()
