"""DKIM signing of outgoing mail; :class:`newsletter.delivery.transports.SigningTransport`
wraps any transport with it.

``List-Unsubscribe`` and ``List-Unsubscribe-Post`` are among the signed headers: mailbox
providers honour one-click unsubscribe only when a valid DKIM signature covers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import dkim

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
