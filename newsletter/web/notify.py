"""The seams between the web app and the broker: how a reader's notice email gets sent, and
how an editor's "send" or "send a test" reaches the workers."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.errors import DeliveryError
from newsletter.delivery.signing import outgoing_transport
from newsletter.subscriptions import notices

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def __call__(self, kind: str, subscriber_id: int, list_ids: list[int]) -> None:
        """Queue a ``confirm`` or ``welcome`` email; called only after the commit."""


class CeleryNotifier:
    """Production: a Celery task sends it, with retries."""

    def __call__(self, kind: str, subscriber_id: int, list_ids: list[int]) -> None:
        from workers.tasks import send_notice

        send_notice.delay(kind, subscriber_id, list_ids)


class ThreadNotifier:
    """No broker configured (a laptop): send from a background thread, no retries."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    def __call__(self, kind: str, subscriber_id: int, list_ids: list[int]) -> None:
        threading.Thread(
            target=self._send, args=(kind, subscriber_id, list_ids), daemon=True
        ).start()

    def _send(self, kind: str, subscriber_id: int, list_ids: list[int]) -> None:
        build = notices.confirmation if kind == "confirm" else notices.welcome
        with session_scope(self.settings.database_url) as session:
            notice = build(
                session, subscriber_id, list_ids, settings=self.settings, now=self.clock()
            )
        if notice is None:
            return
        transport = outgoing_transport(self.settings)
        try:
            notices.send(notice, transport)
        except DeliveryError as error:
            log.warning("%s notice to subscriber %s failed: %s", kind, subscriber_id, error)


def default_notifier(settings: Settings, clock: Clock) -> Notifier:
    return CeleryNotifier() if settings.redis_url else ThreadNotifier(settings, clock)


class EditionSender(Protocol):
    def send(self, edition_id: int) -> None:
        """Start, or resume, sending an edition; called only after the commit."""

    def test(self, edition_id: int, address: str) -> None:
        """Mail a [TEST] copy of the edition to ``address``; no delivery rows."""


class CeleryEditionSender:
    def send(self, edition_id: int) -> None:
        from kombu.exceptions import OperationalError

        from workers.tasks import send_edition

        try:
            send_edition.delay(edition_id)
        except OperationalError as error:
            # The edition is committed as scheduled (or sending): the dispatcher, or the
            # reconciler for a resumed send, enqueues it once the broker is back.
            log.error("broker down; edition %s left to the dispatcher: %s", edition_id, error)

    def test(self, edition_id: int, address: str) -> None:
        from workers.tasks import send_test_edition

        send_test_edition.delay(edition_id, address)


class ThreadEditionSender:
    """No broker configured (a laptop): the work of the tasks, in a background thread."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    def send(self, edition_id: int) -> None:
        threading.Thread(target=self._send, args=(edition_id,), daemon=True).start()

    def test(self, edition_id: int, address: str) -> None:
        threading.Thread(target=self._test, args=(edition_id, address), daemon=True).start()

    def _send(self, edition_id: int) -> None:
        from newsletter.delivery.send import deliver_batch, pending_batches, start_sending

        now = self.clock
        with session_scope(self.settings.database_url) as session:
            start_sending(session, edition_id, now=now())
        with session_scope(self.settings.database_url) as session:
            for batch in pending_batches(session, edition_id, self.settings.batch_size):
                deliver_batch(
                    session, batch, outgoing_transport(self.settings), self.settings, clock=now
                )

    def _test(self, edition_id: int, address: str) -> None:
        try:
            send_test_copy(edition_id, address, self.settings, self.clock)
        except DeliveryError as error:
            log.warning("test copy of edition %s to %s failed: %s", edition_id, address, error)


def send_test_copy(edition_id: int, address: str, settings: Settings, clock: Clock) -> None:
    """Build and send the [TEST] copy now (the task and the thread both call this)."""
    from newsletter.editions.service import get_edition, test_message

    with session_scope(settings.database_url) as session:
        edition = get_edition(session, edition_id)
        message = test_message(edition, address, settings, now=clock())
        sender = edition.newsletter_list.from_address
    with outgoing_transport(settings) as transport:
        transport.send(sender, address, message.data)


def default_edition_sender(settings: Settings, clock: Clock) -> EditionSender:
    return CeleryEditionSender() if settings.redis_url else ThreadEditionSender(settings, clock)
