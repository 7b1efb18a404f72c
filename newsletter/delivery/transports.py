"""The one seam between the pipeline and the outside world of mail.

A transport is opened once per batch and used for many messages; it raises the errors of
:mod:`newsletter.delivery.errors` and nothing else. Pick one with :func:`transport_from_url`.
"""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.delivery.errors import ConnectionLost, PermanentFailure, TemporaryFailure


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


def _classify(code: int, text: str) -> TemporaryFailure | PermanentFailure:
    error_class = PermanentFailure if 500 <= code < 600 else TemporaryFailure
    return error_class(f"{code} {text}".strip(), code=code)


def _reply_text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


@dataclass
class SMTPTransport:
    """SMTP with one persistent connection per batch; TLS and auth from the URL."""

    host: str
    port: int = 25
    tls: str = "none"  # none | starttls | ssl
    username: str | None = None
    password: str | None = None
    timeout: float = 30
    _connection: smtplib.SMTP | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        connection: smtplib.SMTP | None = None
        try:
            if self.tls == "ssl":
                connection = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.tls == "starttls":
                    connection.starttls(context=context)
            if self.username:
                connection.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as error:
            if connection is not None:
                connection.close()
            raise self._connect_error(error) from error
        return connection

    def _connect_error(self, error: Exception) -> ConnectionLost:
        if isinstance(error, smtplib.SMTPAuthenticationError):
            return ConnectionLost(f"SMTP login refused: {error.smtp_code}", error.smtp_code)
        return ConnectionLost(f"cannot reach {self.host}:{self.port}: {error}")

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        if self._connection is None:
            self._connection = self._connect()
        try:
            refused = self._connection.sendmail(sender, [recipient], message)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients[recipient]
            self._reset()
            raise _classify(code, _reply_text(text)) from error
        except smtplib.SMTPServerDisconnected as error:
            self.close()
            raise ConnectionLost(f"the server closed the connection: {error}") from error
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == 421:
                self.close()
                raise ConnectionLost(f"421 {_reply_text(error.smtp_error)}", 421) from error
            self._reset()
            raise _classify(error.smtp_code, _reply_text(error.smtp_error)) from error
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise ConnectionLost(f"SMTP connection failed: {error}") from error
        if refused:
            code, text = refused[recipient]
            raise _classify(code, _reply_text(text))

    def _reset(self) -> None:
        try:
            if self._connection is not None:
                self._connection.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


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


class TransportConfigError(ValueError):
    """NEWSLETTER_SMTP_URL cannot be understood; the message shows the accepted forms."""


def transport_from_url(url: str, *, outbox_dir: Path, timeout: float = 30) -> Transport:
    """``smtp://user:pass@host:587?tls=starttls``, ``smtps://host:465``, ``maildir:PATH``;
    empty means the Maildir outbox in ``outbox_dir``."""
    if not url:
        return MaildirTransport(outbox_dir)
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        return MaildirTransport(Path(unquote(parts.netloc + parts.path) or outbox_dir))
    if parts.scheme in ("smtp", "smtps") and parts.hostname:
        tls = "ssl" if parts.scheme == "smtps" else parse_qs(parts.query).get("tls", ["none"])[0]
        if tls not in ("none", "starttls", "ssl"):
            raise TransportConfigError(f"tls={tls!r}: use none, starttls or ssl")
        return SMTPTransport(
            host=parts.hostname,
            port=parts.port or (465 if tls == "ssl" else 25),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )
    raise TransportConfigError(
        "NEWSLETTER_SMTP_URL must look like smtp://user:pass@host:587?tls=starttls, "
        "smtps://host:465 or maildir:var/outbox"
    )
