"""Thin tasks: take IDs, call the job of :mod:`newsletter.handoff`, hand follow-ups back.

Every task's follow-up work goes through a :class:`~newsletter.handoff.CeleryHandoff` on
this worker's own app, so a task never imports another task.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import current_app, shared_task
from celery.signals import worker_process_shutdown

from newsletter import handoff
from newsletter.clock import clock_for
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.delivery.errors import ConnectionLost, PermanentFailure, TemporaryFailure
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.marks import close_clients
from newsletter.delivery.transports import close_pooled_connections
from newsletter.editions.dispatch import dispatch_due
from newsletter.feeds import due_feeds, poll_due_feed
from newsletter.inbound import intake
from newsletter.inbound.mailbox import MailboxError
from newsletter.subscriptions import readers

log = logging.getLogger(__name__)

# A batch never runs longer than this, so the reconciler (stale_claim_minutes, longer)
# never releases the claim of a batch that is still alive.
DELIVER_TIME_LIMIT_S = 600
# A poll takes at most a few hundred messages; a hung server must not hold a worker for long.
POLL_TIME_LIMIT_S = 300


def utcnow() -> datetime:
    """Now, from the clock the settings ask for: the one seam to the time of day."""
    return clock_for(get_settings())()


def _handoff() -> handoff.CeleryHandoff:
    return handoff.CeleryHandoff(get_settings(), app=current_app)


@worker_process_shutdown.connect
def _quit_smtp_connections(**_: object) -> None:
    close_pooled_connections()
    close_clients()


@shared_task(name="workers.tasks.send_edition")
def send_edition(edition_id: int) -> int:
    """Create the edition's deliveries, then fan out one task per batch of queued rows."""
    return handoff.start_edition(edition_id, _handoff(), get_settings(), utcnow)


@shared_task(name="workers.tasks.deliver", acks_late=True, time_limit=DELIVER_TIME_LIMIT_S)
def deliver(edition_id: int, first_id: int, last_id: int, retries: int = 0) -> int:
    """Send one keyset range of deliveries; what is left is handed to a later task."""
    batch = BatchRange(edition_id, first_id, last_id)
    result = handoff.deliver(batch, _handoff(), get_settings(), utcnow, retries=retries)
    return result.sent


@shared_task(name="workers.tasks.dispatch_due_editions")
def dispatch_due_editions() -> list[int]:
    """Build and send every list's edition whose scheduled time today has passed."""
    with session_scope() as session:
        to_send = dispatch_due(session, now=utcnow(), settings=get_settings())
    for edition_id in to_send:
        _handoff().send_edition(edition_id)
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
    try:
        handoff.send_test(edition_id, address, get_settings(), utcnow)
    except PermanentFailure as error:
        log.warning("test copy of edition %s to %s refused: %s", edition_id, address, error)
        return False
    except (TemporaryFailure, ConnectionLost) as error:
        raise self.retry(countdown=10) from error  # type: ignore[attr-defined]
    return True


@shared_task(name="workers.tasks.send_notice", bind=True, max_retries=handoff.NOTICE_RETRIES)
def send_notice(
    self: object, kind: handoff.NoticeKind, subscriber_id: int, list_ids: list[int]
) -> bool:
    """Send a reader the double opt-in request or the welcome email."""
    try:
        return handoff.send_notice(kind, subscriber_id, list_ids, get_settings(), utcnow)
    except PermanentFailure as error:
        log.warning("%s notice to subscriber %s refused: %s", kind, subscriber_id, error)
        return False
    except (TemporaryFailure, ConnectionLost) as error:
        retries: int = self.request.retries  # type: ignore[attr-defined]
        log.info("%s notice to subscriber %s deferred: %s", kind, subscriber_id, error)
        raise self.retry(countdown=handoff.notice_backoff(retries)) from error  # type: ignore[attr-defined]


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
    stale = timedelta(minutes=settings.stale_claim_minutes)
    return handoff.reconcile(_handoff(), settings, utcnow, stale)


@shared_task(name="workers.tasks.poll_bounce_mailbox", time_limit=POLL_TIME_LIMIT_S)
def poll_bounce_mailbox() -> int:
    """Every minute, when NEWSLETTER_IMAP_URL is set: store, then move or delete, the bounce
    mailbox's messages, then process them; returns how many were newly stored."""
    settings = get_settings()
    if not settings.imap_url:
        return 0
    try:
        return handoff.poll_mailbox(settings, utcnow).stored
    except MailboxError as error:
        # Nothing is lost (what was stored is moved, the rest stays): the next minute retries.
        log.warning("bounce mailbox not polled: %s", error)
        return 0


@shared_task(name="workers.tasks.process_stored_inbound")
def process_stored_inbound() -> int:
    """Every few minutes: process returned mail stored and not processed (the inbound server
    died after its 250, or the database was away while it worked)."""
    done = handoff.process_pending_inbound(get_settings(), utcnow)
    if done:
        log.info("processed %s stored returned messages", done)
    return done


@shared_task(name="workers.tasks.purge_inbound")
def purge_inbound() -> int:
    """Daily: drop the raw bytes of returned mail older than inbound_retention_days, and
    forget the webhook signature tokens too old to be replayed."""
    settings = get_settings()
    with session_scope() as session:
        now = utcnow()
        purged = intake.purge_raw(
            session, now=now, retention=timedelta(days=settings.inbound_retention_days)
        )
        forgotten = intake.forget_tokens(session, now=now)
    log.info(
        "dropped the raw bytes of %s returned messages; forgot %s signature tokens",
        purged, forgotten,
    )  # fmt: skip
    return purged


@shared_task(name="workers.tasks.flush_clicks", time_limit=POLL_TIME_LIMIT_S)
def flush_clicks() -> int:
    """Every minute: write the buffered clicks that have settled; returns how many."""
    return handoff.flush_clicks(get_settings(), utcnow).clicks


@shared_task(name="workers.tasks.purge_reader_clicks")
def purge_reader_clicks() -> int:
    """Daily: forget each reader's own clicks older than click_retention_days."""
    purged = handoff.purge_reader_clicks(get_settings(), utcnow)
    log.info("forgot %s reader clicks past their retention", purged)
    return purged
