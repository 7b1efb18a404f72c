"""What a batch leaves for later, decided once for both hand-offs (Celery and in-process)."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.delivery.batch import BatchResult
from newsletter.handoff import MAX_BATCH_RETRIES, follow_ups


def no_jitter(low: float, high: float) -> float:
    return 1.0


def test_a_finished_batch_leaves_nothing(settings: Settings) -> None:
    assert follow_ups(BatchResult(sent=10), 0, settings, no_jitter) == []


def test_temporary_failures_come_back_after_a_doubling_backoff(settings: Settings) -> None:
    base = settings.retry_backoff_seconds
    first = follow_ups(BatchResult(retry=2), 0, settings, no_jitter)
    third = follow_ups(BatchResult(retry=2), 2, settings, no_jitter)

    assert first == [(base, 1)]
    assert third == [(base * 4, 3)]


def test_a_batch_gives_up_retrying_after_its_last_retry(settings: Settings) -> None:
    assert follow_ups(BatchResult(retry=1), MAX_BATCH_RETRIES, settings, no_jitter) == []


def test_a_spent_rate_limit_hands_the_rest_to_a_fresh_run(settings: Settings) -> None:
    runs = follow_ups(BatchResult(retry_after=30.0), 3, settings, no_jitter)

    assert runs == [(30.0, 0)]


def test_a_rate_limit_wait_is_capped_below_the_visibility_timeout(settings: Settings) -> None:
    [(countdown, _)] = follow_ups(BatchResult(retry_after=86_400.0), 0, settings, no_jitter)

    assert countdown == 3600


def test_a_batch_out_of_time_continues_at_once_and_still_retries(settings: Settings) -> None:
    runs = follow_ups(BatchResult(more=True, retry=1), 2, settings, no_jitter)

    assert runs == [(0.0, 0), (settings.retry_backoff_seconds * 4, 3)]
