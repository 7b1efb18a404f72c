"""The one seam between the entry points and the workers: "send this edition / this batch /
this notice / this test copy".

The web app, the CLI, the dispatcher and the demo hold a :class:`Handoff` and call it only
after their commit. Two implementations:

- :class:`CeleryHandoff` enqueues by task name (``workers.tasks.*``), so nothing under
  ``newsletter/`` imports ``workers/``.
- :class:`InProcessHandoff` runs the same jobs in background threads, for a laptop with no
  broker; a countdown becomes a timer.

The jobs below are what the Celery tasks run too: each opens its units of work, calls the
domain and hands any follow-up (the batches of a send, a batch's retry, a rate-limit
hand-back, the rest of a batch that ran out of time) back to the hand-off it was given. So
both implementations retry, back off and continue in exactly the same way.
"""

from __future__ import annotations

import atexit
import logging
import queue
import random
import threading
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, Protocol

from celery import Celery
from celery.exceptions import DuplicateNodenameWarning
from kombu.exceptions import OperationalError
from sqlalchemy.exc import DBAPIError, IntegrityError

from newsletter.analytics import flush as analytics_flush
from newsletter.analytics import retention
from newsletter.analytics.buffer import ClickBuffer, RedisClickBuffer
from newsletter.analytics.flush import FlushResult
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery import notices
from newsletter.delivery.batch import READER_STAGES, BatchResult
from newsletter.delivery.errors import (
    ConnectionLost,
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
)
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.marks import marks_for
from newsletter.delivery.transports import outgoing_transport
from newsletter.editions import lifecycle, sending
from newsletter.editions.service import get_edition, test_message
from newsletter.inbound import intake, mailbox, process
from newsletter.inbound.policy import Signal

log = logging.getLogger(__name__)

NoticeKind = Literal["confirm", "welcome"]
NOTICES = {"confirm": notices.confirmation, "welcome": notices.welcome}

# A batch stops claiming new groups after this long, well inside the task's time limit.
DELIVER_BUDGET_S = 240
# Temporary failures of a batch are retried this often, with exponential backoff, before
# the batch gives up; the reconciler resumes what is left once its claims go stale.
MAX_BATCH_RETRIES = 8
# Countdowns stay well below the broker's visibility timeout, or Redis hands tasks out twice.
MAX_COUNTDOWN_S = 3600


class Handoff(Protocol):
    """Work for the workers; every call comes after the caller's commit."""

    def send_edition(self, edition_id: int) -> None:
        """Start, or resume, sending an edition: deliveries, then a batch task each."""

    def deliver(self, batch: BatchRange, *, countdown: float = 0, retries: int = 0) -> None:
        """Send one batch of an edition's deliveries, after ``countdown`` seconds."""

    def send_test(self, edition_id: int, address: str) -> None:
        """Mail a [TEST] copy of the edition to ``address``; no delivery rows."""

    def send_notice(self, kind: NoticeKind, subscriber_id: int, list_ids: list[int]) -> None:
        """Mail a reader the double opt-in request or the welcome email."""


# --- The jobs: what a task (or a background thread) does ------------------------------------


def start_edition(edition_id: int, handoff: Handoff, settings: Settings, clock: Clock) -> int:
    """Create the edition's deliveries, then hand off one batch per range of queued rows.

    Asked again for an edition already sending, it hands off whatever is still queued (a
    resume after lost tasks); claims on the rows keep every reader to one message.
    """
    with session_scope(settings.database_url) as session:
        created = lifecycle.start_sending(session, edition_id, now=clock())
    count = enqueue_batches(edition_id, handoff, settings)
    log.info("edition %s: %s new deliveries, %s batches queued", edition_id, created, count)
    return created


def enqueue_batches(edition_id: int, handoff: Handoff, settings: Settings) -> int:
    """Hand off a batch per range of the edition's queued deliveries (committed already)."""
    with session_scope(settings.database_url) as session:
        ranges = sending.batches(session, edition_id, settings)
    for batch in ranges:
        handoff.deliver(batch)
    return len(ranges)


def deliver(
    batch: BatchRange, handoff: Handoff, settings: Settings, clock: Clock, *, retries: int = 0
) -> BatchResult:
    """Send one batch, then hand off whatever it left for later."""
    transport = outgoing_transport(settings)
    with session_scope(settings.database_url) as session:
        result = sending.run_batch(
            session, batch, transport, settings, clock=clock, budget_s=DELIVER_BUDGET_S,
            marks=marks_for(settings.redis_url),
        )  # fmt: skip
    log.info(
        "edition %s batch %s-%s: %s sent, %s failed, %s skipped, %s uncertain, %s to retry",
        batch.edition_id, batch.first_id, batch.last_id,
        result.sent, result.failed, result.skipped, result.uncertain, result.retry,
    )  # fmt: skip
    if result.refused:
        record_refusals(batch.edition_id, result.refused, settings, clock)
    for countdown, attempt in follow_ups(result, retries, settings):
        handoff.deliver(batch, countdown=countdown, retries=attempt)
    if result.needs_retry and retries >= MAX_BATCH_RETRIES:
        log.warning(
            "edition %s batch %s-%s: %s deliveries still failing after %s retries; the "
            "reconciler resumes them", batch.edition_id, batch.first_id, batch.last_id,
            result.retry, retries,
        )  # fmt: skip
    return result


def record_refusals(
    edition_id: int | None, refused: list[tuple[int, str]], settings: Settings, clock: Clock
) -> None:
    """Apply the bounce policy to readers the server refused at once, during a batch of an
    edition or (``edition_id`` None) with their confirmation or welcome notice."""
    try:
        with session_scope(settings.database_url) as session:
            now = clock()
            process.record_refusals(session, edition_id, refused, settings=settings, now=now)
            if edition_id is not None:
                process.trip_breakers(session, [edition_id], settings=settings, now=now)
    except Exception:
        # The refusal stays recorded where it was (the ledger, the caller's log); the next
        # one brings the reader back.
        log.exception("edition %s: could not apply the bounce policy to %s refusals",
                      edition_id, len(refused))  # fmt: skip


def process_inbound(message_id: int, settings: Settings, clock: Clock) -> list[int]:
    """Process one stored returned message; returns the editions it paused.

    A message whose processing raises is marked failed with the error, for an operator,
    rather than retried forever.
    """
    try:
        with session_scope(settings.database_url) as session:
            now = clock()
            editions = process.process(session, message_id, settings=settings, now=now)
            return process.trip_breakers(session, editions, settings=settings, now=now)
    except DBAPIError:
        # The database, not the message: it stays stored and a later sweep processes it.
        log.warning("returned message %s stays stored: the database failed", message_id,
                    exc_info=True)  # fmt: skip
        return []
    except Exception as error:
        log.exception("returned message %s could not be processed", message_id)
        with session_scope(settings.database_url) as session:
            intake.mark_failed(session, message_id, f"{type(error).__name__}: {error}")
        return []


def process_pending_inbound(settings: Settings, clock: Clock) -> int:
    """Process what was stored and not processed (a crash, a restart); returns how many."""
    done = after_id = 0
    while True:
        with session_scope(settings.database_url) as session:
            ids = intake.pending(session, after_id=after_id)
        if not ids:
            return done
        for message_id in ids:
            process_inbound(message_id, settings, clock)
        # Each once per sweep: one the database failed on waits for the next sweep.
        done, after_id = done + len(ids), ids[-1]


def flush_clicks(
    settings: Settings, clock: Clock, buffer: ClickBuffer | None = None
) -> FlushResult:
    """Write the buffered clicks that have settled (:mod:`newsletter.analytics.flush`):
    Redis's by default, or the ``buffer`` of a web app without Redis."""
    if buffer is None:
        if not settings.redis_url:
            return FlushResult()
        buffer = RedisClickBuffer.from_url(settings.redis_url)
    return analytics_flush.flush(
        buffer, lambda: session_scope(settings.database_url), now=clock(), settings=settings
    )


def purge_reader_clicks(settings: Settings, clock: Clock) -> int:
    """Forget each reader's own clicks older than ``click_retention_days``; counts stay."""
    with session_scope(settings.database_url) as session:
        return retention.purge_reader_clicks(
            session, now=clock(), retention=timedelta(days=settings.click_retention_days)
        )


class TokenReused(Exception):
    """A new provider event came signed with a one-time token spent before: a captured
    request replayed with other event data. Nothing was recorded."""


def record_provider_event(
    raw: bytes, signals: list[Signal], *, source: str, external_id: str,
    settings: Settings, clock: Clock, token: str | None = None,
) -> bool:  # fmt: skip
    """Record and apply one provider webhook event, committed before the webhook answers;
    False if the provider had delivered it before.

    ``token`` is the one-time token of the request's signature (Mailgun's), spent in the same
    transaction as the event: a failure to record leaves it unspent for the provider's retry.
    Raises :class:`TokenReused`, recording nothing, when the event is new but the token was
    spent before. The same event again is a duplicate whatever its token, since it changes
    nothing.
    """
    try:
        with session_scope(settings.database_url) as session:
            now = clock()
            fresh = token is None or intake.spend_token(session, source, token, now=now)
            if not fresh and not intake.is_stored(session, source, external_id):
                raise TokenReused(f"{source} signature token used before, for {external_id}")
            editions = process.record_provider_event(
                session, raw, signals, source=source, external_id=external_id,
                settings=settings, now=now,
            )  # fmt: skip
            if editions is None:
                return False
            process.trip_breakers(session, editions, settings=settings, now=now)
    except IntegrityError:
        return False  # the same event (or token), recorded meanwhile by a concurrent request
    return True


def spend_provider_token(source: str, token: str, settings: Settings, clock: Clock) -> bool:
    """Remember the one-time token of a signed request that carried no event we keep, so the
    same signature cannot carry one later; False if it was spent before."""
    try:
        with session_scope(settings.database_url) as session:
            return intake.spend_token(session, source, token, now=clock())
    except IntegrityError:
        return False


def store_inbound(
    raw: bytes, envelope_from: str, recipients: list[str], source: str, settings: Settings,
    clock: Clock, *, external_id: str | None = None,
) -> int | None:  # fmt: skip
    """Store a returned message and commit; its id (None: that provider event was stored)."""
    try:
        with session_scope(settings.database_url) as session:
            return intake.store(
                session, raw, source=source, now=clock(), envelope_from=envelope_from,
                recipients=recipients, external_id=external_id,
            )  # fmt: skip
    except IntegrityError:
        return None  # stored meanwhile by a concurrent poll


def poll_mailbox(settings: Settings, clock: Clock) -> mailbox.PollResult:
    """Read the bounce mailbox (NEWSLETTER_IMAP_URL): store and commit each message, which
    the mailbox then moves or deletes, then process the ones newly stored.

    Processing comes after the poll, so the IMAP connection is not held while it runs; a
    crash in between leaves them stored, and the next poll ends with
    :func:`process_pending_inbound`, so a deployment with only a mailbox needs no other
    sweep. Raises :class:`~newsletter.inbound.mailbox.MailboxError` when the mailbox cannot
    be read.
    """
    stored: list[int] = []

    def store(raw: bytes, external_id: str) -> int | None:
        sender, recipients = mailbox.envelope_of(raw)
        message_id = store_inbound(
            raw, sender, recipients, "imap", settings, clock, external_id=external_id
        )
        if message_id is not None:
            stored.append(message_id)
        return message_id

    try:
        result = mailbox.poll(
            settings.imap_url, store, max_bytes=settings.inbound_max_bytes,
            processed_folder=settings.imap_processed_folder,
        )  # fmt: skip
    finally:  # what was stored before a dropped connection is processed all the same
        for message_id in stored:
            for edition_id in process_inbound(message_id, settings, clock):
                log.warning("edition %s paused itself: see the admin for why", edition_id)
    try:
        process_pending_inbound(settings, clock)
    except Exception:
        # The database failed the stores too (counted in the result); the next poll retries.
        log.exception("bounce mailbox: messages stored earlier could not be processed")
    log.info(
        "bounce mailbox: %s fetched, %s stored, %s stored before, %s moved, %s deleted, "
        "%s failed, %s too large, %s left for the next poll", result.fetched, result.stored,
        result.duplicates, result.moved, result.deleted, result.failed, result.too_large,
        result.left,
    )  # fmt: skip
    return result


def follow_ups(
    result: BatchResult,
    retries: int,
    settings: Settings,
    jitter: Callable[[float, float], float] = random.uniform,
) -> list[tuple[float, int]]:
    """The later runs of a batch, as (countdown in seconds, retries so far)."""
    if result.retry_after is not None:
        # The relay's rate limit is spent for a while: the rest of the range waits in the
        # broker, not in a worker. Nothing failed, so its retries start afresh.
        return [(min(result.retry_after, MAX_COUNTDOWN_S) * jitter(1.0, 1.1), 0)]
    runs = []
    if result.more:  # out of time with rows left: the rest continues in a fresh run
        runs.append((0.0, 0))
    if result.needs_retry and retries < MAX_BATCH_RETRIES:
        backoff = min(settings.retry_backoff_seconds * 2**retries, MAX_COUNTDOWN_S)
        runs.append((backoff * jitter(0.8, 1.2), retries + 1))
    return runs


def send_test(edition_id: int, address: str, settings: Settings, clock: Clock) -> None:
    """Build and send an editor's [TEST] copy now; raises the transport's errors."""
    with session_scope(settings.database_url) as session:
        edition = get_edition(session, edition_id)
        message = test_message(edition, address, settings, now=clock())
        sender = edition.newsletter_list.from_address
    with outgoing_transport(settings) as transport:
        transport.send(sender, address, message.data)


def send_notice(
    kind: NoticeKind, subscriber_id: int, list_ids: list[int], settings: Settings, clock: Clock
) -> bool:
    """Send a reader's notice now; False if the reader erased their data or was blocked
    meanwhile. A server's refusal is raised after the bounce policy has heard of it."""
    with session_scope(settings.database_url) as session:
        notice = NOTICES[kind](session, subscriber_id, list_ids, settings=settings, now=clock())
    if notice is None:
        return False
    try:
        notices.send(notice, outgoing_transport(settings))
    except PermanentFailure as error:
        # As for a digest: only a refusal of the recipient or of the message is about them.
        if error.code is not None and error.stage in READER_STAGES:
            record_refusals(None, [(subscriber_id, str(error))], settings, clock)
        raise
    return True


def reconcile(handoff: Handoff, settings: Settings, clock: Clock, stale_after: timedelta) -> int:
    """Recover batches whose worker died and sends whose tasks vanished; returns how many
    batches were enqueued again."""
    with session_scope(settings.database_url) as session:
        result = sending.reconcile(
            session, now=clock(), stale_after=stale_after, marks=marks_for(settings.redis_url)
        )
    return resume_reconciled(result, handoff, settings)


def resume_reconciled(result: sending.Reconciled, handoff: Handoff, settings: Settings) -> int:
    """Enqueue (after the reconcile committed) one batch per stranded range and every batch
    of an idle send; logs what the reconcile found."""
    for batch in result.stranded:
        handoff.deliver(batch)
    enqueued = len(result.stranded)
    for edition_id in result.editions:
        enqueued += enqueue_batches(edition_id, handoff, settings)
    if result.recorded or result.uncertain or result.untried or enqueued:
        log.warning(
            "reconciled: %s sent by their progress marks, %s uncertain, %s untried queued "
            "again, %s batches enqueued again (stranded ranges %s, idle editions %s)",
            result.recorded, result.uncertain, result.untried, enqueued,
            [(b.edition_id, b.first_id, b.last_id) for b in result.stranded], result.editions,
        )  # fmt: skip
    return enqueued


# --- Celery ----------------------------------------------------------------------------------


def celery_config(settings: Settings) -> dict[str, Any]:
    """What producers and workers agree on: JSON, the queue, acks after the work."""
    return {
        "task_default_queue": settings.celery_queue,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
    }


_PRODUCERS: dict[tuple[str, str], Celery] = {}
_PRODUCERS_LOCK = threading.Lock()


def _producer(broker_url: str, queue: str) -> Celery:
    """One sending Celery app per broker and queue, shared by the whole process."""
    with _PRODUCERS_LOCK:
        app = _PRODUCERS.get((broker_url, queue))
        if app is None:
            app = Celery("newsletter", broker=broker_url, set_as_current=False)
            app.conf.update(
                task_default_queue=queue, task_serializer="json", accept_content=["json"]
            )
            _PRODUCERS[(broker_url, queue)] = app
        return app


@atexit.register
def _close_producers() -> None:
    """Hang up on the brokers this process sent to, rather than leave it to the collector."""
    with _PRODUCERS_LOCK:
        apps = list(_PRODUCERS.values())
        _PRODUCERS.clear()
    for app in apps:
        app.close()


class BrokerUnavailable(RuntimeError):
    """The broker did not take the task; what was committed stays, nothing was enqueued."""


class CeleryHandoff:
    """Enqueue by task name on the settings' broker (or on the given Celery app)."""

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.app = app or _producer(settings.redis_url, settings.celery_queue)

    def _send(self, name: str, *args: Any, countdown: float = 0, **kwargs: Any) -> None:
        try:
            self.app.send_task(
                f"workers.tasks.{name}", args=args, kwargs=kwargs, countdown=countdown or None
            )
        except OperationalError as error:
            raise BrokerUnavailable(
                f"the broker did not take the {name.replace('_', ' ')} task ({error}); "
                "is Redis running at NEWSLETTER_REDIS_URL?"
            ) from error

    def send_edition(self, edition_id: int) -> None:
        self._send("send_edition", edition_id)

    def deliver(self, batch: BatchRange, *, countdown: float = 0, retries: int = 0) -> None:
        self._send(
            "deliver", batch.edition_id, batch.first_id, batch.last_id,
            countdown=countdown, retries=retries,
        )  # fmt: skip

    def send_test(self, edition_id: int, address: str) -> None:
        self._send("send_test_edition", edition_id, address)

    def send_notice(self, kind: NoticeKind, subscriber_id: int, list_ids: list[int]) -> None:
        self._send("send_notice", kind, subscriber_id, list_ids)

    @property
    def queue(self) -> str:
        return str(self.app.conf.task_default_queue)

    def consumers(self, waits: tuple[float, ...] = (0.5, 1.0)) -> list[str]:
        """The workers consuming this hand-off's queue, by name: those that answer a
        broadcast over the broker, asked once per wait (in seconds) until one does.

        With Redis nothing else knows who consumes a queue. A worker answers between two
        tasks of its own with ``--pool=solo``, at any time with the default prefork pool.
        """
        for wait in waits:
            try:
                with warnings.catch_warnings():
                    # Workers sharing a name (two on one machine, no --hostname) answer as one:
                    # one is all this asks for.
                    warnings.simplefilter("ignore", DuplicateNodenameWarning)
                    answers = self.app.control.inspect(timeout=wait).active_queues() or {}
            except OperationalError as error:
                raise BrokerUnavailable(
                    f"cannot ask the broker for workers ({error}); "
                    "is Redis running at NEWSLETTER_REDIS_URL?"
                ) from error
            names = sorted(
                name for name, queues in answers.items()
                if any(queue.get("name") == self.queue for queue in queues or ())
            )  # fmt: skip
            if names:
                return names
        return []


# --- In process ------------------------------------------------------------------------------


class InProcessHandoff:
    """No broker (a laptop): the same jobs, one at a time, in a background thread of this
    process, like a worker of one; a countdown is a timer that queues the job when it ends."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="newsletter-jobs", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:
                log.exception("background job %s failed", getattr(job, "__name__", job))

    def _later(self, countdown: float, job: Callable[..., object], *args: Any) -> None:
        def queued() -> None:
            job(*args)

        queued.__name__ = getattr(job, "__name__", "job")
        if countdown <= 0:
            self._jobs.put(queued)
            return
        timer = threading.Timer(countdown, self._jobs.put, args=(queued,))
        timer.daemon = True
        timer.start()

    def send_edition(self, edition_id: int) -> None:
        self._later(0, start_edition, edition_id, self, self.settings, self.clock)

    def deliver(self, batch: BatchRange, *, countdown: float = 0, retries: int = 0) -> None:
        def run() -> None:
            deliver(batch, self, self.settings, self.clock, retries=retries)

        self._later(countdown, run)

    def send_test(self, edition_id: int, address: str) -> None:
        def run() -> None:
            try:
                send_test(edition_id, address, self.settings, self.clock)
            except DeliveryError as error:
                log.warning("test copy of edition %s to %s failed: %s", edition_id, address, error)

        self._later(0, run)

    def send_notice(self, kind: NoticeKind, subscriber_id: int, list_ids: list[int]) -> None:
        self._notice(kind, subscriber_id, list_ids, attempt=0)

    def _notice(
        self, kind: NoticeKind, subscriber_id: int, list_ids: list[int], attempt: int
    ) -> None:
        def run() -> None:
            try:
                send_notice(kind, subscriber_id, list_ids, self.settings, self.clock)
            except (TemporaryFailure, ConnectionLost) as error:
                if attempt >= NOTICE_RETRIES:
                    log.warning("%s notice to subscriber %s failed: %s", kind, subscriber_id, error)
                    return
                self._later(notice_backoff(attempt), self._notice, kind, subscriber_id,
                            list_ids, attempt + 1)  # fmt: skip
            except DeliveryError as error:
                log.warning("%s notice to subscriber %s refused: %s", kind, subscriber_id, error)

        self._later(0, run)


NOTICE_RETRIES = 6


def notice_backoff(retries: int) -> float:
    """Seconds before a notice's next try: 20 s, doubling, at most half an hour."""
    return float(min(20 * 2**retries, 1800))


def default_handoff(settings: Settings, clock: Clock) -> Handoff:
    """Celery when a broker is configured, else background threads in this process."""
    return CeleryHandoff(settings) if settings.redis_url else InProcessHandoff(settings, clock)


__all__ = [
    "BrokerUnavailable",
    "CeleryHandoff",
    "Handoff",
    "InProcessHandoff",
    "NoticeKind",
    "TokenReused",
    "celery_config",
    "default_handoff",
    "deliver",
    "enqueue_batches",
    "follow_ups",
    "poll_mailbox",
    "process_inbound",
    "process_pending_inbound",
    "reconcile",
    "record_provider_event",
    "record_refusals",
    "send_notice",
    "send_test",
    "spend_provider_token",
    "start_edition",
    "store_inbound",
]
