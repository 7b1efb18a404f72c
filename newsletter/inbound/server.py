"""The inbound SMTP (or LMTP) server: where bounces and email unsubscribes arrive.

It accepts mail only for the bounce address (any ``+tag``) and the unsubscribe address, and
refuses every other recipient at RCPT time, so it can never become a relay or a spam trap.
Each message is stored and committed before the server answers 250; processing follows in
the background (see :mod:`newsletter.inbound.intake`). A message that cannot be stored gets a
451, so the sending server keeps it and tries again. Oversized messages get a 552.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.delivery.verp import ReturnPath

log = logging.getLogger(__name__)

# Stores one message: (raw, envelope sender, recipients, source) -> its id.
Store = Callable[[bytes, str, Sequence[str], str], int]


class InboundHandler:
    """aiosmtpd handler: filter recipients, store, acknowledge, then hand the id on."""

    def __init__(
        self,
        return_path: ReturnPath | None,
        unsubscribe_mailbox: str,
        store: Store,
        on_stored: Callable[[int], None],
        *,
        lmtp: bool = False,
    ) -> None:
        self.return_path = return_path
        self.unsubscribe_mailbox = unsubscribe_mailbox.lower()
        self.store = store
        self.on_stored = on_stored
        self.source = "lmtp" if lmtp else "smtp"
        self.lmtp = lmtp
        # One thread: the database call must not block the event loop, and SQLite wants
        # one writer anyway.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbound-store")

    def accepts(self, address: str) -> bool:
        if address.lower() == self.unsubscribe_mailbox:
            return True
        return self.return_path is not None and self.return_path.owns(address)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:  # fmt: skip
        if not self.accepts(address):
            return (
                f"550 5.1.1 <{address}>: no such mailbox here; this server takes only "
                "bounces and unsubscribe requests"
            )
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        sender = envelope.mail_from or ""
        sender = "" if sender == "<>" else sender
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(
                self.executor, self.store, raw, sender, list(envelope.rcpt_tos), self.source
            )
        except Exception:
            log.exception("could not store a returned message; the sender will retry")
            status = "451 4.3.0 could not store the message now; please try again later"
        else:
            self.on_stored(stored)
            status = f"250 2.0.0 stored as {stored}"
        # LMTP answers DATA once per recipient.
        return "\r\n".join([status] * len(envelope.rcpt_tos)) if self.lmtp else status


def server_factory(handler: InboundHandler, *, max_bytes: int, hostname: str) -> Callable[[], Any]:
    server_class = LMTP if handler.lmtp else SMTP

    def factory() -> SMTP:
        return server_class(
            handler,
            data_size_limit=max_bytes,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="newsletter inbound",
        )

    return factory


async def serve(
    handler: InboundHandler, *, host: str, port: int, max_bytes: int, hostname: str,
    ready: Callable[[], None] | None = None,
) -> None:  # fmt: skip
    """Serve until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        server_factory(handler, max_bytes=max_bytes, hostname=hostname), host=host, port=port
    )
    if ready is not None:
        ready()
    async with server:
        await server.serve_forever()
