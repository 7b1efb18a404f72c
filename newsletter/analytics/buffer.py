"""Where the redirect leaves clicks until the flush writes them: Redis, or this process.

The redirect appends one line per click (one ``RPUSH``) and answers; nothing else happens on
its path. The flush takes what is there in a batch of its own (``RENAME``, atomic), keeps
the messages whose clicks have settled, gives the others back, and deletes the batch only
after the database has recorded it, so a crash at any point neither loses nor doubles a click.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Protocol, cast

import redis

CLICKS_KEY = "newsletter:clicks"
_BATCH_PREFIX = "newsletter:clicks:batch:"


class ClickBuffer(Protocol):
    def push(self, line: str) -> None: ...

    def batches(self) -> list[str]:
        """Batches taken earlier and not yet finished (a flush that died)."""

    def take(self) -> str | None:
        """Move everything buffered into a new batch; its name, or None if there was nothing."""

    def read(self, batch: str) -> list[str]: ...

    def keep(self, batch: str, settled: Sequence[str], unsettled: Sequence[str]) -> None:
        """Leave only ``settled`` in the batch and give ``unsettled`` back, in one step."""

    def finish(self, batch: str) -> None: ...


class RedisClickBuffer:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str) -> RedisClickBuffer:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5))

    def push(self, line: str) -> None:
        self.client.rpush(CLICKS_KEY, line)

    def batches(self) -> list[str]:
        return sorted(
            key.decode()[len(_BATCH_PREFIX) :]
            for key in self.client.scan_iter(match=_BATCH_PREFIX + "*", count=100)
        )

    def take(self) -> str | None:
        batch = uuid.uuid4().hex
        try:
            self.client.rename(CLICKS_KEY, _BATCH_PREFIX + batch)
        except redis.ResponseError:  # no such key: nothing buffered
            return None
        return batch

    def read(self, batch: str) -> list[str]:
        lines = cast(list[bytes], self.client.lrange(_BATCH_PREFIX + batch, 0, -1))
        return [line.decode("utf-8", "replace") for line in lines]

    def keep(self, batch: str, settled: Sequence[str], unsettled: Sequence[str]) -> None:
        key = _BATCH_PREFIX + batch
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if settled:
                pipe.rpush(key, *settled)
            if unsettled:
                pipe.rpush(CLICKS_KEY, *unsettled)
            pipe.execute()

    def finish(self, batch: str) -> None:
        self.client.delete(_BATCH_PREFIX + batch)


class MemoryClickBuffer:
    """For a web app without Redis (development): clicks live in the process that took them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._batches: dict[str, list[str]] = {}

    def push(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def batches(self) -> list[str]:
        with self._lock:
            return sorted(self._batches)

    def take(self) -> str | None:
        with self._lock:
            if not self._lines:
                return None
            batch = uuid.uuid4().hex
            self._batches[batch], self._lines = self._lines, []
            return batch

    def read(self, batch: str) -> list[str]:
        with self._lock:
            return list(self._batches.get(batch, []))

    def keep(self, batch: str, settled: Sequence[str], unsettled: Sequence[str]) -> None:
        with self._lock:
            self._batches[batch] = list(settled)
            self._lines.extend(unsettled)

    def finish(self, batch: str) -> None:
        with self._lock:
            self._batches.pop(batch, None)
