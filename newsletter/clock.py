"""The one clock: every "now" in the system comes through here.

A clock is any zero-argument callable returning an aware UTC ``datetime``. Entry points
(the web app, the CLI, the Celery tasks, the dispatcher) hold one and pass ``now=clock()``
or the clock itself to domain functions; domain code never reads the wall clock.

- ``system_clock``: the real time, in production.
- ``FrozenClock``: stands still until moved (``set``, ``advance``); what tests use.
- ``RunningClock``: starts at a chosen instant and ticks at real speed; what
  ``NEWSLETTER_CLOCK_START`` gives every process of an install (demos, tests of real
  worker processes, reproducing a bug "at 06:59 on the day DST starts").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

Clock = Callable[[], datetime]


class _HasClockStart(Protocol):
    @property
    def clock_start(self) -> datetime | None: ...


def system_clock() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"a clock needs an aware datetime, got {at.isoformat()}")
    return at.astimezone(UTC)


class FrozenClock:
    """Stands still at ``at`` until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self._at = _aware(at)

    def __call__(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = _aware(at)

    def advance(self, delta: timedelta) -> None:
        self._at += delta

    def __repr__(self) -> str:
        return f"FrozenClock({self._at.isoformat()})"


class RunningClock:
    """Starts at ``start`` and moves forward with the machine's monotonic clock."""

    def __init__(self, start: datetime) -> None:
        self._start = _aware(start)
        self._origin = time.monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin)


def clock_for(settings: _HasClockStart) -> Clock:
    """The clock an install's settings ask for: the system clock unless a start is set.

    One clock per start for the whole process, so a running clock started by
    ``NEWSLETTER_CLOCK_START`` keeps ticking from where it began, however often asked.
    """
    return _clock_starting(settings.clock_start)


@lru_cache(maxsize=8)
def _clock_starting(start: datetime | None) -> Clock:
    return system_clock if start is None else RunningClock(start)


__all__ = ["Clock", "FrozenClock", "RunningClock", "clock_for", "system_clock"]
