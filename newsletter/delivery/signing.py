"""DKIM signing of outgoing mail, as a wrapper around any transport.

``List-Unsubscribe`` and ``List-Unsubscribe-Post`` are among the signed headers: mailbox
providers honour one-click unsubscribe only when a valid DKIM signature covers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Self

import dkim

from newsletter.config import Settings
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
    """The transport every message leaves through: SMTP or Maildir, DKIM-signed if set up."""
    transport = transport_from_url(
        settings.smtp_url, outbox_dir=settings.outbox_dir, timeout=settings.smtp_timeout
    )
    if not settings.dkim_domain or settings.dkim_private_key is None:
        return transport
    signer = DKIMSigner(
        settings.dkim_domain, settings.dkim_selector, settings.dkim_private_key.read_bytes()
    )
    return SigningTransport(transport, signer)
