"""`newsletter inbound serve` as a process of its own, for the tests that send it mail."""

from __future__ import annotations

import os
import re
import smtplib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editions.lifecycle import start_sending
from newsletter.models import Edition, NewsletterList, Subscriber
from newsletter.runtime import free_port
from tests.factories import edition_with_readers


@dataclass
class Inbound:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def send(self, data: bytes, recipient: str, sender: str = "") -> str:
        """Deliver one message as a mail server would; the server's reply to DATA."""
        data = re.sub(rb"\r?\n", b"\r\n", data)  # smtplib sends bytes as they are
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo("mta.example.net")
            client.mail(sender)
            code, reply = client.rcpt(recipient)
            if code >= 400:
                return f"{code} {reply.decode()}"
            code, reply = client.data(data)
            return f"{code} {reply.decode()}"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"inbound server exited:\n{log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"inbound server did not listen:\n{log.read_text()}")


def start_inbound_server(tmp_path: Path, *extra: str) -> Inbound:
    port = free_port()
    log = tmp_path / f"inbound-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "inbound", "serve", "--port", str(port), *extra],
            env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    _wait_for_port(port, process, log)
    return Inbound(port, process, log)


def edition_being_sent(
    session: Session, nl: NewsletterList, readers: list[str], *, settings: Settings,
    now: datetime,
) -> Edition:  # fmt: skip
    """An edition being sent to ``readers``: their deliveries exist, as bounces need."""
    edition = edition_with_readers(session, nl, readers, now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    return edition


def reader_now(email: str) -> Subscriber:
    """The reader as the database holds them now."""
    with session_scope() as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        assert found is not None
        session.expunge(found)
        return found
