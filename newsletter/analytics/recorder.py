"""The redirect's side of click tracking: find a link's destination, note the click, go.

The hot path is one dictionary lookup and one ``RPUSH``: a link's destination never changes
(numbers are never reused), so it is read from the database once per process.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable
from typing import cast

import redis
import redis.asyncio

from newsletter.analytics.buffer import CLICKS_KEY, ClickBuffer, MemoryClickBuffer, RedisClickBuffer

log = logging.getLogger(__name__)

_CACHED_LINKS = 20_000


class LinkCache:
    """(edition, number) -> (url, list slug), for the links most recently followed."""

    def __init__(self, size: int = _CACHED_LINKS) -> None:
        self._size = size
        self._links: OrderedDict[tuple[int, int], tuple[str, str]] = OrderedDict()

    def get(self, key: tuple[int, int]) -> tuple[str, str] | None:
        """The cached destination, or None when it is not cached."""
        found = self._links.get(key)
        if found is not None:
            self._links.move_to_end(key)
        return found

    def put(self, key: tuple[int, int], found: tuple[str, str]) -> None:
        """Called from one thread only (the event loop's): the cache takes no lock."""
        self._links[key] = found
        if len(self._links) > self._size:
            self._links.popitem(last=False)


class ClickRecorder:
    """Where clicks go: Redis when the app has one, else this process (development)."""

    def __init__(self, redis_url: str) -> None:
        self.buffer: ClickBuffer
        self._redis: redis.asyncio.Redis | None = None
        if redis_url:
            self.buffer = RedisClickBuffer.from_url(redis_url)
            self._redis = redis.asyncio.Redis.from_url(
                redis_url, socket_timeout=2, socket_connect_timeout=2
            )
        else:
            self.buffer = MemoryClickBuffer()
        self._last_flush = 0.0

    @property
    def in_process(self) -> bool:
        """Clicks wait in this process (no Redis): only this process can write them."""
        return self._redis is None

    def flush_due(self, now: float, every: float) -> bool:
        """For an app without Redis (and so without beat's flush): time to write them."""
        if not self.in_process or now - self._last_flush < every:
            return False
        self._last_flush = now
        return True

    async def close(self) -> None:
        """At the app's shutdown: give the Redis connections back."""
        if self._redis is not None:
            await self._redis.aclose()

    async def record(self, line: str) -> None:
        """Buffer one event; a Redis that is down costs the count, never the reader's way."""
        if self._redis is None:
            self.buffer.push(line)
            return
        try:
            await cast(Awaitable[int], self._redis.rpush(CLICKS_KEY, line))
        except (redis.RedisError, OSError) as error:
            log.warning("click not counted: Redis unavailable: %s", error)
