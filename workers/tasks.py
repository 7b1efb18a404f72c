"""Thin tasks: take IDs, open a unit of work, call the domain, enqueue after commit."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from celery import shared_task
from celery.signals import worker_process_shutdown

from newsletter.clock import clock_for
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.delivery import recovery
from newsletter.delivery.errors import ConnectionLost, PermanentFailure, TemporaryFailure
from newsletter.delivery.send import BatchRange, deliver_batch, pending_batches, start_sending
from newsletter.delivery.signing import close_pooled_connections, outgoing_transport
from newsletter.dispatch import dispatch_due
from newsletter.feeds import due_feeds, poll_due_feed
from newsletter.subscriptions import notices, readers

log = logging.getLogger(__name__)

DELIVER_TIME_LIMIT_S = 600
# A batch stops claiming new groups after this long, well inside the time limit.
DELIVER_BUDGET_S = 240


def utcnow() -> datetime:
    """Now, from the clock the settings ask for: the one seam to the time of day."""
    return clock_for(get_settings())()


@worker_process_shutdown.connect
def _quit_smtp_connections(**_: object) -> None:
    close_pooled_connections()


def enqueue_batches(edition_id: int) -> int:
    """Queue a task per pending batch of an edition; call only after the rows are committed."""
    settings = get_settings()
    with session_scope() as session:
        batches = pending_batches(session, edition_id, settings.batch_size)
    for batch in batches:
        deliver.delay(batch.edition_id, batch.first_id, batch.last_id)
    return len(batches)


@shared_task(name="workers.tasks.send_edition")
def send_edition(edition_id: int) -> int:
    """Create the edition's deliveries, then fan out one task per batch of queued rows.

    Asked again for an edition already sending, it re-enqueues whatever is still queued (a
    resume after lost tasks); claims on the rows keep every reader to one message.
    """
    with session_scope() as session:
        created = start_sending(session, edition_id, now=utcnow())
    batches = enqueue_batches(edition_id)
    log.info("edition %s: %s new deliveries, %s batches queued", edition_id, created, batches)
    return created


@shared_task(
    name="workers.tasks.deliver",
    bind=True,
    max_retries=8,
    acks_late=True,
    # A batch never runs longer than this, so the reconciler (stale_claim_minutes, longer)
    # never releases the claim of a batch that is still alive.
    time_limit=DELIVER_TIME_LIMIT_S,
)
def deliver(self: object, edition_id: int, first_id: int, last_id: int) -> int:
    """Send one keyset range of deliveries; temporary failures retry with backoff."""
    settings = get_settings()
    transport = outgoing_transport(settings)
    with session_scope() as session:
        result = deliver_batch(
            session, BatchRange(edition_id, first_id, last_id), transport, settings,
            clock=utcnow, budget_s=DELIVER_BUDGET_S,
        )  # fmt: skip
    log.info(
        "edition %s batch %s-%s: %s sent, %s failed, %s skipped, %s uncertain, %s to retry",
        edition_id, first_id, last_id,
        result.sent, result.failed, result.skipped, result.uncertain, result.retry,
    )  # fmt: skip
    if result.retry_after is not None:
        # The relay's rate limit is spent for a while: the rest of the range waits in Redis,
        # not in a worker. Capped well below the broker's visibility timeout.
        countdown = min(result.retry_after, 3600) * random.uniform(1.0, 1.1)
        deliver.apply_async((edition_id, first_id, last_id), countdown=countdown)
        return result.sent
    if result.more:
        # Slowed by rate limits: the rest of the range continues in a fresh task.
        deliver.delay(edition_id, first_id, last_id)
    if result.needs_retry:
        retries: int = self.request.retries  # type: ignore[attr-defined]
        # Exponential backoff with jitter, capped well below the broker's visibility timeout.
        base = settings.retry_backoff_seconds
        countdown = min(base * 2**retries, 3600) * random.uniform(0.8, 1.2)
        raise self.retry(countdown=countdown)  # type: ignore[attr-defined]
    return result.sent


@shared_task(name="workers.tasks.dispatch_due_editions")
def dispatch_due_editions() -> list[int]:
    """Build and send every list's edition whose scheduled time today has passed."""
    settings = get_settings()
    with session_scope() as session:
        to_send = dispatch_due(session, now=utcnow(), settings=settings)
    for edition_id in to_send:
        send_edition.delay(edition_id)
    return to_send


@shared_task(name="workers.tasks.poll_feeds")
def poll_feeds() -> int:
    """Every minute: poll each due, unpaused feed, each in transactions of its own."""
    settings = get_settings()
    with session_scope() as session:
        due = [feed.id for feed in due_feeds(session, utcnow())]
    polled = 0
    for feed_id in due:
        try:
            polled += poll_due_feed(feed_id, settings, clock=utcnow) is not None
        except Exception:
            # Our fault, not the feed's (that is recorded on it): the other feeds go on.
            log.exception("feed %s could not be polled", feed_id)
    return polled


@shared_task(name="workers.tasks.send_test_edition", bind=True, max_retries=3)
def send_test_edition(self: object, edition_id: int, address: str) -> bool:
    """An editor's [TEST] copy of an edition; no delivery rows, readers untouched."""
    from newsletter.web.notify import send_test_copy

    try:
        send_test_copy(edition_id, address, get_settings(), utcnow)
    except PermanentFailure as error:
        log.warning("test copy of edition %s to %s refused: %s", edition_id, address, error)
        return False
    except (TemporaryFailure, ConnectionLost) as error:
        raise self.retry(countdown=10) from error  # type: ignore[attr-defined]
    return True


NOTICES = {"confirm": notices.confirmation, "welcome": notices.welcome}


@shared_task(name="workers.tasks.send_notice", bind=True, max_retries=6)
def send_notice(self: object, kind: str, subscriber_id: int, list_ids: list[int]) -> bool:
    """Send a reader the double opt-in request or the welcome email."""
    settings = get_settings()
    with session_scope() as session:
        notice = NOTICES[kind](session, subscriber_id, list_ids, settings=settings, now=utcnow())
    if notice is None:
        return False  # the reader erased their data meanwhile
    transport = outgoing_transport(settings)
    try:
        notices.send(notice, transport)
    except PermanentFailure as error:
        log.warning("%s notice to subscriber %s refused: %s", kind, subscriber_id, error)
        return False
    except (TemporaryFailure, ConnectionLost) as error:
        retries: int = self.request.retries  # type: ignore[attr-defined]
        log.info("%s notice to subscriber %s deferred: %s", kind, subscriber_id, error)
        raise self.retry(countdown=min(20 * 2**retries, 1800)) from error  # type: ignore[attr-defined]
    return True


@shared_task(name="workers.tasks.purge_expired_signups")
def purge_expired_signups() -> int:
    """Daily: drop signups never confirmed within the configured number of days."""
    settings = get_settings()
    with session_scope() as session:
        purged = readers.purge_expired_signups(
            session, now=utcnow(), ttl=timedelta(days=settings.pending_signup_ttl_days)
        )
    log.info("purged %s unconfirmed signups", purged)
    return purged


@shared_task(name="workers.tasks.reconcile_deliveries")
def reconcile_deliveries() -> int:
    """Every few minutes: recover batches whose worker died and sends whose tasks vanished."""
    settings = get_settings()
    with session_scope() as session:
        result = recovery.reconcile(
            session, now=utcnow(), stale_after=timedelta(minutes=settings.stale_claim_minutes)
        )
    for edition_id in result.editions:
        enqueue_batches(edition_id)
    if result.uncertain or result.editions:
        log.warning(
            "reconciled: %s uncertain, batches enqueued again for editions %s",
            result.uncertain, result.editions,
        )  # fmt: skip
    return len(result.editions)
