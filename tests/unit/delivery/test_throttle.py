"""Relay throttling shared by every worker, against a real Redis on a fake clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from newsletter.delivery.throttle import RelayThrottle, relay_throttle


class FakeTime:
    """A clock that only moves when told to, and a sleep that moves it."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def relay() -> str:
    return f"smtp-{uuid.uuid4().hex}.example.com"


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def throttle(
    client: redis.Redis,
    relay: str,
    fake_time: FakeTime,
    *,
    per_second: float = 10,
    per_hour: float = 0,
) -> RelayThrottle:
    return RelayThrottle(
        client,
        relay,
        per_second=per_second,
        per_hour=per_hour,
        sleep=fake_time.sleep,
        clock=fake_time,
    )


def test_a_burst_up_to_the_per_second_capacity_passes(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)

    assert [limiter.try_acquire(1) for _ in range(10)] == [0.0] * 10


def test_past_the_burst_the_wait_is_one_over_the_rate(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)
    limiter.try_acquire(10)

    assert limiter.try_acquire(1) == pytest.approx(0.1)
    assert limiter.try_acquire(2) == pytest.approx(0.2)


def test_a_refused_request_takes_nothing(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)
    limiter.try_acquire(5)

    assert limiter.try_acquire(10) > 0
    assert limiter.try_acquire(5) == 0.0


def test_tokens_refill_with_time(client: redis.Redis, relay: str, fake_time: FakeTime) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)
    limiter.try_acquire(10)

    fake_time.advance(0.5)

    assert limiter.try_acquire(5) == 0.0
    assert limiter.try_acquire(1) == pytest.approx(0.1)


def test_idle_time_saves_up_no_more_than_one_seconds_burst(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)
    limiter.try_acquire(10)

    fake_time.advance(60)

    assert limiter.try_acquire(10) == 0.0
    assert limiter.try_acquire(1) == pytest.approx(0.1)


def test_a_rate_below_one_per_second_still_lets_one_message_through(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=0.5)

    assert limiter.try_acquire(1) == 0.0
    assert limiter.try_acquire(1) == pytest.approx(2.0)


def test_the_hourly_bucket_limits_while_the_per_second_one_has_tokens(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=100, per_hour=5)

    assert limiter.try_acquire(5) == 0.0
    assert limiter.try_acquire(1) == pytest.approx(3600 / 5)


def test_two_workers_for_one_relay_share_the_buckets(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    first = throttle(client, relay, fake_time, per_second=10)
    second = throttle(client, relay, fake_time, per_second=10)

    first.try_acquire(10)

    assert second.try_acquire(1) == pytest.approx(0.1)


def test_relays_do_not_share_buckets(client: redis.Redis, relay: str, fake_time: FakeTime) -> None:
    throttle(client, relay, fake_time, per_second=10).try_acquire(10)
    other = throttle(client, f"other-{relay}", fake_time, per_second=10)

    assert other.try_acquire(10) == 0.0


def test_back_off_makes_every_worker_for_the_relay_wait(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    first = throttle(client, relay, fake_time)
    second = throttle(client, relay, fake_time)

    first.back_off(30)

    assert second.backoff_remaining() == pytest.approx(30)
    assert second.try_acquire(1) == pytest.approx(30)


def test_a_shorter_back_off_does_not_shorten_the_pause(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time)

    limiter.back_off(60)
    limiter.back_off(5)
    assert limiter.backoff_remaining() == pytest.approx(60)

    limiter.back_off(120)
    assert limiter.backoff_remaining() == pytest.approx(120)


def test_sending_resumes_with_full_buckets_when_the_pause_ends(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)
    limiter.back_off(30)

    fake_time.advance(30)

    assert limiter.backoff_remaining() == 0.0
    assert limiter.try_acquire(10) == 0.0


def test_acquire_takes_more_than_the_capacity_in_parts(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)

    waited = limiter.acquire(50)

    assert waited == pytest.approx(4.0)
    assert fake_time.sleeps == pytest.approx([1.0] * 4)
    assert limiter.try_acquire(1) == pytest.approx(0.1)


def test_acquire_waits_out_a_back_off(client: redis.Redis, relay: str, fake_time: FakeTime) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)
    limiter.back_off(5)

    assert limiter.acquire(1) == pytest.approx(5.0)


def test_try_acquire_refuses_more_than_a_bucket_holds(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10)

    with pytest.raises(ValueError, match="capacity"):
        limiter.try_acquire(11)


def test_unlimited_rates_never_wait(client: redis.Redis, relay: str, fake_time: FakeTime) -> None:
    limiter = throttle(client, relay, fake_time, per_second=0, per_hour=0)

    assert limiter.acquire(100_000) == 0.0
    assert limiter.try_acquire(100_000) == 0.0
    assert fake_time.sleeps == []
    assert list(client.scan_iter(match=f"newsletter:throttle:{{{relay}}}:*")) == []


def test_an_unlimited_per_second_rate_leaves_the_hourly_limit(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=0, per_hour=100)

    assert limiter.try_acquire(100) == 0.0
    assert limiter.try_acquire(1) == pytest.approx(36.0)


def test_relay_throttle_is_none_when_nothing_is_limited(client: redis.Redis, relay: str) -> None:
    assert relay_throttle(client, relay, per_second=0, per_hour=0) is None
    assert isinstance(relay_throttle(client, relay, per_second=10, per_hour=0), RelayThrottle)
    assert isinstance(relay_throttle(client, relay, per_second=0, per_hour=1000), RelayThrottle)


def test_keys_expire_once_the_buckets_would_be_full_again(
    client: redis.Redis, relay: str, fake_time: FakeTime
) -> None:
    limiter = throttle(client, relay, fake_time, per_second=10, per_hour=1000)
    limiter.try_acquire(1)
    limiter.back_off(30)
    prefix = f"newsletter:throttle:{{{relay}}}"

    assert 0 < pttl(client, f"{prefix}:second") <= 2_000
    assert 3_600_000 < pttl(client, f"{prefix}:hour") <= 3_601_000
    assert 29_000 < pttl(client, f"{prefix}:backoff") <= 30_000


def pttl(client: redis.Redis, key: str) -> int:
    milliseconds = client.pttl(key)
    assert isinstance(milliseconds, int)
    return milliseconds
