"""The seam between the web app and the broker: how a reader's notice email gets sent."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Protocol

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

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, kind: str, subscriber_id: int, list_ids: list[int]) -> None:
        threading.Thread(
            target=self._send, args=(kind, subscriber_id, list_ids), daemon=True
        ).start()

    def _send(self, kind: str, subscriber_id: int, list_ids: list[int]) -> None:
        build = notices.confirmation if kind == "confirm" else notices.welcome
        with session_scope(self.settings.database_url) as session:
            notice = build(
                session, subscriber_id, list_ids, settings=self.settings, now=datetime.now(UTC)
            )
        if notice is None:
            return
        transport = outgoing_transport(self.settings)
        try:
            notices.send(notice, transport)
        except DeliveryError as error:
            log.warning("%s notice to subscriber %s failed: %s", kind, subscriber_id, error)


def default_notifier(settings: Settings) -> Notifier:
    return CeleryNotifier() if settings.redis_url else ThreadNotifier(settings)
