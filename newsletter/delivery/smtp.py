"""SMTP delivery: a pool of persistent connections to one or more relays.

A worker process keeps its connections open from batch to batch and hands each message over
with one round trip for the envelope (PIPELINING: MAIL, RCPT and DATA written together) and
one for the body. What can go wrong, and what happens:

- a 421 reply, or a connection that drops before the whole message went out: the server did
  not take the message, so the pool reconnects (to the next relay if this one is down) and
  sends it again, a few times at most, before giving up with ``ConnectionLost``;
- a connection that drops after the whole message went out and before the reply: the server
  may have taken it. ``DeliveryUncertain``: never sent again automatically;
- 4xx to one recipient: ``TemporaryFailure``; 5xx: ``PermanentFailure``;
- 421 or a 4xx to the envelope or the body is the relay asking everyone to slow down: the
  pool backs off that relay (in Redis for every worker when a throttle is configured).
"""

from __future__ import annotations

import functools
import os
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.delivery.errors import (
    ConnectionLost,
    DeliveryUncertain,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from newsletter.delivery.mime import DotSafe

# Sending the same message again after a 421 or a drop before it was complete: how often.
RECONNECT_ATTEMPTS = 3
MAX_RELAY_BACKOFF_S = 300.0
_LEADING_DOT = re.compile(rb"(?m)^\.")


class TransportConfigError(ValueError):
    """NEWSLETTER_SMTP_URL cannot be understood; the message shows the accepted forms."""


class Throttle(Protocol):
    """A relay's shared rate limit (see :mod:`newsletter.delivery.throttle`)."""

    def try_acquire(self, n: int) -> float:
        """Take ``n`` tokens and return 0, or take none and return the seconds to wait."""

    def back_off(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Relay:
    host: str
    port: int = 25
    tls: str = "none"  # none | starttls | ssl
    username: str | None = None
    password: str | None = None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def parse_relays(url: str) -> list[Relay]:
    """``smtp://user:pass@host:587?tls=starttls, smtps://backup:465``: relays in failover order."""
    relays = []
    for part in (p.strip() for p in url.split(",")):
        parts = urlsplit(part)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise TransportConfigError(
                f"{part!r} is not an SMTP relay: NEWSLETTER_SMTP_URL must look like "
                "smtp://user:pass@host:587?tls=starttls, smtps://host:465 (several, comma "
                "separated, for failover) or maildir:var/outbox"
            )
        tls = "ssl" if parts.scheme == "smtps" else parse_qs(parts.query).get("tls", ["none"])[0]
        if tls not in ("none", "starttls", "ssl"):
            raise TransportConfigError(f"tls={tls!r} in {part!r}: use none, starttls or ssl")
        relays.append(
            Relay(
                host=parts.hostname,
                port=parts.port or (465 if tls == "ssl" else 25),
                tls=tls,
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
            )
        )
    return relays


class _Reconnect(Exception):
    """The message was not taken and the connection is unusable: send it on a new one."""

    def __init__(self, reason: str, *, slow_down: bool = False) -> None:
        super().__init__(reason)
        self.slow_down = slow_down


def _text(raw: bytes | str) -> str:
    return (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()


def _refusal(code: int, text: bytes | str, *, stage: str) -> Exception:
    reply = f"{code} {_text(text)}".strip()
    if code == 421:
        return _Reconnect(f"{reply} (at {stage})", slow_down=True)
    if 500 <= code < 600:
        return PermanentFailure(reply, code=code, stage=stage)
    return TemporaryFailure(reply, code=code, stage=stage)


def _check_address(address: str) -> None:
    if any(c in address for c in "\r\n<>") or not address:
        raise PermanentFailure(f"refusing to send to the malformed address {address!r}")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Loading the system's CA certificates takes milliseconds: done once per process, not
    once per connection."""
    return ssl.create_default_context()


class SMTPSession:
    """One connection to one relay, after EHLO, STARTTLS and login."""

    def __init__(self, relay: Relay, timeout: float) -> None:
        self.relay = relay
        self.messages = 0
        self.pid = os.getpid()
        context = _tls_context() if relay.tls != "none" else None
        connection: smtplib.SMTP | None = None
        try:
            if relay.tls == "ssl":
                connection = smtplib.SMTP_SSL(
                    relay.host, relay.port, timeout=timeout, context=context
                )
            else:
                connection = smtplib.SMTP(relay.host, relay.port, timeout=timeout)
                if relay.tls == "starttls":
                    connection.starttls(context=context)
            connection.ehlo_or_helo_if_needed()
            if relay.username:
                connection.login(relay.username, relay.password or "")
        except smtplib.SMTPAuthenticationError as error:
            if connection is not None:
                connection.close()
            raise ConnectionLost(
                f"SMTP login refused by {relay.name}: {error.smtp_code}", error.smtp_code
            ) from error
        except (OSError, smtplib.SMTPException) as error:
            if connection is not None:
                connection.close()
            raise ConnectionLost(f"cannot reach {relay.name}: {error}") from error
        self.smtp = connection
        self.pipelining = connection.has_extn("pipelining")
        self.smtputf8 = connection.has_extn("smtputf8")

    def deliver(self, sender: str, recipient: str, message: bytes) -> None:
        """Hand one message over; return once the relay accepted it."""
        _check_address(recipient)
        if not (sender.isascii() and recipient.isascii()):
            self._deliver_utf8(sender, recipient, message)
            return
        try:
            self._envelope(sender, recipient)
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            raise _Reconnect(f"connection to {self.relay.name} lost: {error}") from error
        self._body(message)

    def _envelope(self, sender: str, recipient: str) -> None:
        commands = [f"MAIL FROM:<{sender}>", f"RCPT TO:<{recipient}>", "DATA"]
        if self.pipelining:
            self.smtp.send("".join(c + "\r\n" for c in commands))
            replies = [self.smtp.getreply() for _ in commands]
        else:
            replies = []
            for command in commands:
                self.smtp.putcmd(command)
                replies.append(self.smtp.getreply())
                if replies[-1][0] >= 400:
                    break
        stages = ("MAIL FROM", "RCPT TO", "DATA")
        for stage, (code, text) in zip(stages, replies, strict=False):
            if code >= 400:
                if replies[-1][0] == 354:
                    # The relay took DATA despite the refusal: end an empty message at once.
                    self.smtp.send(b".\r\n")
                    self.smtp.getreply()
                self._reset()
                error = _refusal(code, text, stage=stage)
                if isinstance(error, TemporaryFailure) and stage != "RCPT TO":
                    # A 4xx to the envelope is about the relay, not this reader.
                    raise _Reconnect(str(error), slow_down=True) from error
                raise error
        if replies[-1][0] != 354:
            self._reset()
            raise _Reconnect(f"unexpected reply to DATA: {replies[-1][0]}")

    def _body(self, message: bytes) -> None:
        if not isinstance(message, DotSafe) and (b"\n." in message or message.startswith(b".")):
            message = _LEADING_DOT.sub(b"..", message)
        ending = b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n"
        try:
            self.smtp.send(message + ending)
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            # sendall failed, so the final dot never left: the relay cannot have taken it.
            raise _Reconnect(f"connection to {self.relay.name} lost: {error}") from error
        try:
            code, text = self.smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            raise DeliveryUncertain(
                f"connection to {self.relay.name} lost after the message was sent, before "
                f"the reply: {error}"
            ) from error
        if code != 250:
            refusal = _refusal(code, text, stage="end of DATA")
            if isinstance(refusal, TemporaryFailure):
                raise _Reconnect(str(refusal), slow_down=True) from refusal
            raise refusal
        self.messages += 1

    def _deliver_utf8(self, sender: str, recipient: str, message: bytes) -> None:
        if not self.smtputf8:
            raise PermanentFailure(f"{self.relay.name} cannot take internationalised addresses")
        try:
            refused = self.smtp.sendmail(sender, [recipient], message, mail_options=["SMTPUTF8"])
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients[recipient]
            self._reset()
            raise _refusal(code, text, stage="RCPT TO") from error
        except smtplib.SMTPResponseException as error:
            self._reset()
            raise _refusal(error.smtp_code, error.smtp_error, stage="SMTPUTF8") from error
        except (OSError, smtplib.SMTPException) as error:
            raise _Reconnect(f"connection to {self.relay.name} lost: {error}") from error
        if refused:
            code, text = refused[recipient]
            raise _refusal(code, text, stage="RCPT TO")
        self.messages += 1

    def _reset(self) -> None:
        try:
            self.smtp.rset()
        except (OSError, smtplib.SMTPException) as error:
            raise _Reconnect(f"connection to {self.relay.name} lost: {error}") from error

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()


@dataclass
class SMTPPool:
    """Persistent SMTP connections shared by the batches of one process; thread-safe.

    Relays are tried in order: one that cannot be reached is skipped for ``relay_down_s``.
    A connection is closed after ``max_messages_per_connection`` messages (providers cap
    them). ``throttles`` (relay name -> shared token bucket) set the pace when configured.
    """

    relays: list[Relay]
    timeout: float = 30
    max_messages_per_connection: int = 1000
    throttles: dict[str, Throttle] = field(default_factory=dict)
    # Tokens taken from a throttle at a time: fewer Redis round trips at high rates.
    throttle_block: int = 1
    relay_down_s: float = 30
    backoff_s: float = 5
    # Longer waits for the rate limit raise Throttled: the batch hands its rest to a later
    # task rather than hold a worker (and its claimed group) for minutes.
    max_throttle_wait_s: float = 5
    max_idle: int = 8
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _idle: list[SMTPSession] = field(default_factory=list, init=False, repr=False)
    _down_until: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _slow_downs: int = field(default=0, init=False, repr=False)
    _paused_until: float = field(default=0.0, init=False, repr=False)
    _credit: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        """Connections outlive a batch; :meth:`close` ends them."""

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        reason = ""
        for _ in range(RECONNECT_ATTEMPTS):
            session = self._checkout()
            try:
                self._pace(session.relay)
            except Throttled:
                self._checkin(session)
                raise
            try:
                session.deliver(sender, recipient, message)
            except _Reconnect as error:
                reason = str(error)
                session.close()
                if error.slow_down:
                    self._slow_down(session.relay)
                continue
            except DeliveryUncertain:
                session.close()
                raise
            except (TemporaryFailure, PermanentFailure):
                self._checkin(session)
                raise
            self._slow_downs = 0
            self._checkin(session)
            return
        raise ConnectionLost(f"gave up after {RECONNECT_ATTEMPTS} connections: {reason}")

    def _checkout(self) -> SMTPSession:
        with self._lock:
            while self._idle:
                session = self._idle.pop()
                if session.pid == os.getpid():
                    return session
                # Inherited across a fork: the parent owns that socket, so leave it alone.
        return self._connect()

    def _checkin(self, session: SMTPSession) -> None:
        if session.messages >= self.max_messages_per_connection:
            session.close()
            return
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(session)
                return
        session.close()

    def _connect(self) -> SMTPSession:
        now = self.clock()
        errors = []
        available = [r for r in self.relays if self._down_until.get(r.name, 0) <= now]
        for relay in available or self.relays:
            try:
                return SMTPSession(relay, self.timeout)
            except ConnectionLost as error:
                errors.append(str(error))
                self._down_until[relay.name] = self.clock() + self.relay_down_s
        raise ConnectionLost("; ".join(errors))

    def _pace(self, relay: Relay) -> None:
        throttle = self.throttles.get(relay.name)
        if throttle is not None:
            with self._lock:
                credit = self._credit.get(relay.name, 0)
                self._credit[relay.name] = max(credit - 1, 0)
            if not credit:
                self._wait_for_tokens(relay, throttle)
                with self._lock:
                    self._credit[relay.name] = self.throttle_block - 1
        else:
            wait = self._paused_until - self.clock()
            if wait > self.max_throttle_wait_s:
                raise Throttled(f"{relay.name} asked to slow down for {wait:.0f} s", wait)
            if wait > 0:
                self.sleep(wait)

    def _wait_for_tokens(self, relay: Relay, throttle: Throttle) -> None:
        while wait := throttle.try_acquire(self.throttle_block):
            if wait > self.max_throttle_wait_s:
                raise Throttled(f"{relay.name} is rate limited for {wait:.0f} s", wait)
            self.sleep(wait)

    def _slow_down(self, relay: Relay) -> None:
        """The relay said 421 or 4xx to the envelope: pause it, longer each time in a row."""
        seconds = min(self.backoff_s * 2**self._slow_downs, MAX_RELAY_BACKOFF_S)
        self._slow_downs += 1
        throttle = self.throttles.get(relay.name)
        if throttle is not None:
            throttle.back_off(seconds)
            self._credit.pop(relay.name, None)
        else:
            self._paused_until = max(self._paused_until, self.clock() + seconds)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            if session.pid == os.getpid():
                session.close()
