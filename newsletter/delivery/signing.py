"""DKIM signing of outgoing mail, as a wrapper around any transport.

``List-Unsubscribe`` and ``List-Unsubscribe-Post`` are among the signed headers: mailbox
providers honour one-click unsubscribe only when a valid DKIM signature covers them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import dkim
import redis

from newsletter.config import Settings
from newsletter.delivery.smtp import SMTPPool, Throttle, parse_relays
from newsletter.delivery.throttle import relay_throttle
from newsletter.delivery.transports import Transport, transport_from_url

SIGNED_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
)  # fmt: skip


@dataclass(frozen=True)
class DKIMSigner:
    domain: str
    selector: str
    private_key: bytes

    def sign(self, message: bytes) -> bytes:
        signature: bytes = dkim.sign(
            message,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
        )
        return signature + message


@dataclass
class SigningTransport:
    """Signs each message, then hands it to the wrapped transport."""

    inner: Transport
    signer: DKIMSigner

    def __enter__(self) -> Self:
        self.inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.inner.__exit__(exc_type, exc, traceback)

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        self.inner.send(sender, recipient, self.signer.sign(message))


def outgoing_transport(settings: Settings) -> Transport:
    """The transport every message leaves through: SMTP or Maildir, DKIM-signed if set up.

    SMTP connections are pooled per process, so batch after batch reuses them.
    """
    transport: Transport
    if settings.smtp_url.startswith(("smtp://", "smtps://")):
        transport = _shared_pool(settings)
    else:
        transport = transport_from_url(
            settings.smtp_url, outbox_dir=settings.outbox_dir, timeout=settings.smtp_timeout
        )
    if not settings.dkim_domain or settings.dkim_private_key is None:
        return transport
    signer = DKIMSigner(
        settings.dkim_domain, settings.dkim_selector, settings.dkim_private_key.read_bytes()
    )
    return SigningTransport(transport, signer)


_POOLS: dict[tuple[object, ...], SMTPPool] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(settings: Settings) -> SMTPPool:
    key = (
        settings.smtp_url, settings.smtp_timeout, settings.smtp_max_messages_per_connection,
        settings.smtp_rate_per_second, settings.smtp_rate_per_hour,
        settings.smtp_relay_backoff_seconds, settings.smtp_relay_down_seconds, settings.redis_url,
    )  # fmt: skip
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _new_pool(settings)
        return pool


def _new_pool(settings: Settings) -> SMTPPool:
    relays = parse_relays(settings.smtp_url)
    per_second, per_hour = settings.smtp_rate_per_second, settings.smtp_rate_per_hour
    throttles: dict[str, Throttle] = {}
    if (per_second > 0 or per_hour > 0) and settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url)
        for relay in relays:
            throttle = relay_throttle(client, relay.name, per_second, per_hour)
            if throttle is not None:
                throttles[relay.name] = throttle
    return SMTPPool(
        relays,
        timeout=settings.smtp_timeout,
        max_messages_per_connection=settings.smtp_max_messages_per_connection,
        throttles=throttles,
        # From 100 messages a second, take tokens ten at a time: a tenth of the round trips.
        throttle_block=10 if per_second <= 0 or per_second >= 100 else 1,
        relay_down_s=settings.smtp_relay_down_seconds,
        backoff_s=settings.smtp_relay_backoff_seconds,
    )


def close_pooled_connections() -> None:
    """QUIT every pooled SMTP connection of this process (at worker shutdown)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()
