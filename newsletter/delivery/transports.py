"""The one seam between the pipeline and the outside world of mail.

A transport is opened once per batch and used for many messages; it raises the errors of
:mod:`newsletter.delivery.errors` and nothing else. Everything that sends asks
:func:`outgoing_transport` for one: it picks SMTP (a pool per process, shared by batch
after batch) or the Maildir outbox from the settings, and wraps it in DKIM signing when
a key is configured. :func:`transport_from_url` builds one from a URL alone.
"""

from __future__ import annotations

import mailbox
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import unquote, urlsplit

import redis

from newsletter.config import Settings
from newsletter.delivery.errors import ConnectionLost
from newsletter.delivery.signing import DKIMSigner
from newsletter.delivery.smtp import SMTPPool, Throttle, TransportConfigError, parse_relays
from newsletter.delivery.throttle import relay_throttle

__all__ = [
    "MaildirTransport", "MemoryTransport", "SMTPPool", "SigningTransport", "Transport",
    "TransportConfigError", "close_pooled_connections", "outgoing_transport",
    "transport_from_url",
]  # fmt: skip


class Transport(Protocol):
    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        """Hand one message over; return only once the receiver has accepted it."""


@dataclass
class MaildirTransport:
    """Writes each message into a Maildir folder: the outbox of the quick start and demo."""

    path: Path
    _box: mailbox.Maildir | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Self:
        self._box = self._open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._box = None

    def _open(self) -> mailbox.Maildir:
        """The Maildir, made with its parent folders if need be (a fresh var/, a new disk)."""
        try:
            for folder in ("tmp", "new", "cur"):  # an empty folder counts as no Maildir yet
                (self.path / folder).mkdir(parents=True, exist_ok=True)
            return mailbox.Maildir(self.path, create=False)
        except OSError as error:
            raise ConnectionLost(f"cannot open the outbox {self.path}: {error}") from error

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        box = self._box if self._box is not None else self._open()
        try:
            # Maildir writes to tmp/ and renames into new/: a message is whole or absent.
            box.add(message)
        except OSError as error:
            raise ConnectionLost(f"cannot write to the outbox {self.path}: {error}") from error


@dataclass
class MemoryTransport:
    """Keeps messages in a list: the test double for unit tests of pure logic."""

    sent: list[tuple[str, str, bytes]] = field(default_factory=list)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        self.sent.append((sender, recipient, message))


def transport_from_url(url: str, *, outbox_dir: Path, timeout: float = 30) -> Transport:
    """``smtp://user:pass@host:587?tls=starttls`` (several, comma separated, for failover),
    ``smtps://host:465``, ``maildir:PATH``; empty means the Maildir outbox in ``outbox_dir``.

    SMTP gives a fresh :class:`SMTPPool` with default limits; workers share one per process
    through :func:`outgoing_transport`.
    """
    if not url:
        return MaildirTransport(outbox_dir)
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        return MaildirTransport(Path(unquote(parts.netloc + parts.path) or outbox_dir))
    return SMTPPool(parse_relays(url), timeout=timeout)


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
