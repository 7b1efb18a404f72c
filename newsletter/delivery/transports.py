"""The one seam between the pipeline and the outside world of mail.

A transport is opened once per batch and used for many messages; it raises the errors of
:mod:`newsletter.delivery.errors` and nothing else. Pick one with :func:`transport_from_url`.
"""

from __future__ import annotations

import mailbox
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import unquote, urlsplit

from newsletter.delivery.errors import ConnectionLost
from newsletter.delivery.smtp import SMTPPool, TransportConfigError, parse_relays

__all__ = [
    "MaildirTransport", "MemoryTransport", "SMTPPool", "Transport", "TransportConfigError",
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
        self._box = mailbox.Maildir(self.path, create=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._box = None

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        box = self._box or mailbox.Maildir(self.path, create=True)
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
    through :func:`newsletter.delivery.signing.outgoing_transport`.
    """
    if not url:
        return MaildirTransport(outbox_dir)
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        return MaildirTransport(Path(unquote(parts.netloc + parts.path) or outbox_dir))
    return SMTPPool(parse_relays(url), timeout=timeout)
