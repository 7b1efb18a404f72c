"""How fast one SMTP relay may be fed, shared by every worker through Redis.

Each relay has two token buckets, one refilled per second and one per hour, and a
relay-wide pause that any worker sets after a 4xx/421 reply. One Lua script checks all
three and takes tokens from both buckets or from neither, so workers never race.

Keys live under ``newsletter:throttle:{relay}:``; the braces are a Redis Cluster hash tag,
keeping a relay's keys in one slot as a script requires. Each key expires once it would
have refilled or run out anyway, so an idle relay leaves nothing behind. Times come from
the caller's clock (passed to the script), which lets tests run on a fake one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import redis

__all__ = ["RelayThrottle", "relay_throttle"]

SECOND_MS = 1000
HOUR_MS = 3600 * SECOND_MS

# KEYS: per-second bucket, per-hour bucket, pause.
# ARGV: now (ms), n, then for each bucket: tokens per period (0 = unlimited), period (ms),
# capacity. Returns 0 when n tokens were taken from both buckets, else the wait in ms.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local wait = 0

local paused_until = tonumber(redis.call('GET', KEYS[3]))
if paused_until and paused_until > now then
  wait = paused_until - now
end

local buckets = {}
for i = 1, 2 do
  local rate = tonumber(ARGV[3 * i])
  local period = tonumber(ARGV[3 * i + 1])
  local capacity = tonumber(ARGV[3 * i + 2])
  if rate > 0 then
    local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
    local tokens = tonumber(state[1]) or capacity
    local ts = tonumber(state[2]) or now
    tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / period)
    if tokens < n then
      wait = math.max(wait, (n - tokens) * period / rate)
    end
    buckets[i] = {tokens - n, math.max(ts, now), capacity * period / rate}
  end
end

if wait > 0 then
  return math.ceil(wait)
end
for i, bucket in pairs(buckets) do
  redis.call('HSET', KEYS[i], 'tokens', bucket[1], 'ts', bucket[2])
  redis.call('PEXPIRE', KEYS[i], math.ceil(bucket[3]) + 1000)
end
return 0
"""

# KEYS: pause. ARGV: paused until (ms), pause length (ms). Only ever lengthens the pause.
_BACK_OFF = """
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class RelayThrottle:
    """Token buckets in Redis shared by every worker, for one relay.

    A rate <= 0 leaves that bucket unlimited. The per-second bucket holds
    ``max(1, per_second)`` tokens (a one-second burst), the per-hour one ``per_hour``.
    """

    def __init__(
        self,
        client: redis.Redis,
        relay: str,
        *,
        per_second: float,
        per_hour: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if 0 < per_hour < 1:
            raise ValueError(f"per_hour must be 0 (unlimited) or at least 1, not {per_hour}")
        self.relay = relay
        self.per_second = max(per_second, 0.0)
        self.per_hour = max(per_hour, 0.0)
        self.sleep = sleep
        self.clock = clock
        self._client = client
        prefix = f"newsletter:throttle:{{{relay}}}"
        self._keys = [f"{prefix}:second", f"{prefix}:hour", f"{prefix}:backoff"]
        self._acquire = client.register_script(_ACQUIRE)
        self._back_off = client.register_script(_BACK_OFF)
        capacities = [
            capacity
            for rate, capacity in [
                (self.per_second, max(1.0, self.per_second)),
                (self.per_hour, self.per_hour),
            ]
            if rate > 0
        ]
        self._capacity = min(capacities, default=math.inf)

    def try_acquire(self, n: int) -> float:
        """Take n tokens from both buckets atomically if available and no backoff is
        active; return 0.0. Otherwise take nothing and return the seconds to wait before
        trying again. n may not exceed a bucket's capacity: ``acquire`` splits for that."""
        if not 0 <= n <= self._capacity:
            raise ValueError(f"cannot take {n} tokens at once (capacity {self._capacity})")
        args = [
            self._now_ms(),
            n,
            self.per_second, SECOND_MS, max(1.0, self.per_second),
            self.per_hour, HOUR_MS, self.per_hour,
        ]  # fmt: skip
        wait_ms = int(self._acquire(keys=self._keys, args=args))
        return wait_ms / SECOND_MS

    def acquire(self, n: int) -> float:
        """Block (via ``self.sleep``) until n tokens were taken; return the seconds waited.

        n larger than a bucket's capacity is taken in parts, so a chunk of 50 under a
        10/s limit still goes through, at the limit's pace.
        """
        part = max(1, math.floor(self._capacity)) if math.isfinite(self._capacity) else n
        waited = 0.0
        while n > 0:
            take = min(n, part)
            wait = self.try_acquire(take)
            if wait:
                self.sleep(wait)
                waited += wait
            else:
                n -= take
        return waited

    def back_off(self, seconds: float) -> None:
        """Pause the relay for every worker for ``seconds`` (never shortens an existing
        longer pause)."""
        if seconds <= 0:
            return
        pause_ms = math.ceil(seconds * SECOND_MS)
        self._back_off(keys=self._keys[2:], args=[self._now_ms() + pause_ms, pause_ms])

    def backoff_remaining(self) -> float:
        """Seconds until the relay-wide pause ends; 0.0 when there is none."""
        paused_until = self._client.get(self._keys[2])
        if not isinstance(paused_until, bytes | str):  # None: no pause, or it expired
            return 0.0
        return max(0.0, (int(paused_until) - self._now_ms()) / SECOND_MS)

    def _now_ms(self) -> int:
        # Whole milliseconds keep the script's arithmetic exact for round rates.
        return round(self.clock() * SECOND_MS)


def relay_throttle(
    client: redis.Redis, relay: str, per_second: float, per_hour: float
) -> RelayThrottle | None:
    """The throttle for ``relay``, or None when neither rate is limited."""
    if per_second <= 0 and per_hour <= 0:
        return None
    return RelayThrottle(client, relay, per_second=per_second, per_hour=per_hour)
