"""The SMTP pool against real servers: replies become the right delivery errors, connections
are reused, replaced and failed over, and nothing is sent twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.delivery.errors import (
    ConnectionLost,
    DeliveryUncertain,
    PermanentFailure,
    TemporaryFailure,
    Throttled,
)
from newsletter.delivery.smtp import Relay, SMTPPool, TransportConfigError, parse_relays
from newsletter.delivery.throttle import RelayThrottle
from newsletter.delivery.transports import transport_from_url
from newsletter.runtime import free_port
from tests.smtp_server import RecordingHandler, SMTPServer

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


class CountingHandler(RecordingHandler):
    """Counts sessions (EHLOs); can advertise PIPELINING and refuse MAIL FROM with 421."""

    def __init__(self, *, pipelining: bool = False) -> None:
        super().__init__()
        self.pipelining = pipelining
        self.sessions = 0
        self.mail_replies: list[str] = []  # replies to the next MAIL FROMs, in order
        self.drop_after_data = False

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.drop_after_data:
            server.transport.close()  # took the message, and the connection died before "250"
        return reply


def serve(handler: RecordingHandler, port: int | None = None) -> SMTPServer:
    server = SMTPServer(handler, port=port)
    server.start()
    return server


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelining"])
def counting(request: pytest.FixtureRequest) -> Iterator[SMTPServer]:
    server = serve(CountingHandler(pipelining=request.param))
    yield server
    server.stop()


def handler_of(server: SMTPServer) -> CountingHandler:
    assert isinstance(server.handler, CountingHandler)
    return server.handler


_open: list[SMTPPool] = []


@pytest.fixture(autouse=True)
def _close_pools() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def pool(*servers: SMTPServer, **options: Any) -> SMTPPool:
    """A pool on these servers, closed after the test; backoff sleeps are recorded, not slept."""
    sleeps: list[float] = []
    options.setdefault("sleep", sleeps.append)
    _open.append(SMTPPool([Relay("127.0.0.1", s.port) for s in servers], timeout=5, **options))
    return _open[-1]


def test_one_connection_serves_many_batches(counting: SMTPServer) -> None:
    p = pool(counting)
    for batch in range(3):
        with p:
            for i in range(4):
                p.send("a@example.com", f"r{batch}-{i}@example.com", MESSAGE)
    p.close()
    assert len(counting.handler.received) == 12
    assert handler_of(counting).sessions == 1


def test_message_arrives_byte_for_byte_with_leading_dots(counting: SMTPServer) -> None:
    message = MESSAGE + b".starts with a dot\r\n..two\r\n.\r\nend\r\n"
    p = pool(counting)
    p.send("a@example.com", "b@example.com", message)
    p.close()
    assert counting.handler.received[0].data.replace(b"\r\n", b"\n") == message.replace(
        b"\r\n", b"\n"
    )


def test_5xx_reply_is_permanent(counting: SMTPServer) -> None:
    counting.handler.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    with pytest.raises(PermanentFailure, match=r"550 5\.1\.1 no such user"):
        pool(counting).send("a@example.com", "gone@example.com", MESSAGE)


def test_4xx_reply_is_temporary_and_the_connection_goes_on(counting: SMTPServer) -> None:
    counting.handler.rcpt_replies["full@example.com"] = "452 4.2.2 mailbox full"
    p = pool(counting)
    with pytest.raises(TemporaryFailure, match="452"):
        p.send("a@example.com", "full@example.com", MESSAGE)
    p.send("a@example.com", "ok@example.com", MESSAGE)
    assert [r.recipients for r in counting.handler.received] == [["ok@example.com"]]
    assert handler_of(counting).sessions == 1


def test_421_reconnects_sends_once_and_slows_down(counting: SMTPServer) -> None:
    handler_of(counting).mail_replies.append("421 4.7.0 too many messages, slow down")
    sleeps: list[float] = []
    p = pool(counting, sleep=sleeps.append, backoff_s=2)
    p.send("a@example.com", "b@example.com", MESSAGE)
    assert [r.recipients for r in counting.handler.received] == [["b@example.com"]]
    assert handler_of(counting).sessions == 2
    assert len(sleeps) == 1
    assert 1.5 < sleeps[0] <= 2


def test_connections_are_replaced_after_the_cap(counting: SMTPServer) -> None:
    p = pool(counting, max_messages_per_connection=2)
    for i in range(5):
        p.send("a@example.com", f"r{i}@example.com", MESSAGE)
    assert len(counting.handler.received) == 5
    assert handler_of(counting).sessions == 3


def test_a_connection_the_server_dropped_while_idle_is_replaced() -> None:
    first = serve(CountingHandler())
    p = pool(first)
    p.send("a@example.com", "one@example.com", MESSAGE)
    first.stop()  # the relay restarts: the pooled connection is dead
    second = serve(CountingHandler(), port=first.port)
    try:
        p.send("a@example.com", "two@example.com", MESSAGE)
    finally:
        second.stop()
    assert [r.recipients for r in second.handler.received] == [["two@example.com"]]


def test_unreachable_relay_fails_over_to_the_next(counting: SMTPServer) -> None:
    dead = Relay("127.0.0.1", free_port())
    p = SMTPPool([dead, Relay("127.0.0.1", counting.port)], timeout=2)
    _open.append(p)
    p.send("a@example.com", "b@example.com", MESSAGE)
    assert [r.recipients for r in counting.handler.received] == [["b@example.com"]]


def test_no_reachable_relay_is_a_lost_connection() -> None:
    p = SMTPPool([Relay("127.0.0.1", free_port()), Relay("127.0.0.1", free_port())], timeout=2)
    with pytest.raises(ConnectionLost, match="cannot reach"):
        p.send("a@example.com", "b@example.com", MESSAGE)


def test_drop_after_the_whole_message_is_uncertain_not_resent(counting: SMTPServer) -> None:
    handler_of(counting).drop_after_data = True
    with pytest.raises(DeliveryUncertain, match="before the reply"):
        pool(counting).send("a@example.com", "b@example.com", MESSAGE)
    assert len(counting.handler.received) == 1


def test_address_with_line_break_is_refused_before_the_wire(counting: SMTPServer) -> None:
    with pytest.raises(PermanentFailure, match="malformed"):
        pool(counting).send("a@example.com", "b@example.com\r\nRCPT TO:<x@evil>", MESSAGE)
    assert counting.handler.received == []


def test_shared_rate_limit_paces_the_pool(counting: SMTPServer, redis_url: str) -> None:
    clock = [1000.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    throttle = RelayThrottle(
        redis.Redis.from_url(redis_url), f"relay-{uuid.uuid4().hex}", per_second=5,
        per_hour=0, sleep=sleep, clock=lambda: clock[0],
    )  # fmt: skip
    name = f"127.0.0.1:{counting.port}"
    p = pool(counting, throttles={name: throttle}, sleep=sleep)
    for i in range(15):
        p.send("a@example.com", f"r{i}@example.com", MESSAGE)
    assert len(counting.handler.received) == 15
    assert clock[0] - 1000.0 == pytest.approx(2.0, abs=0.01)  # 5 at once, then 5 a second


def test_spent_hourly_limit_hands_the_message_back_instead_of_waiting(
    counting: SMTPServer, redis_url: str
) -> None:
    throttle = RelayThrottle(
        redis.Redis.from_url(redis_url), f"relay-{uuid.uuid4().hex}", per_second=0, per_hour=2
    )
    p = pool(counting, throttles={f"127.0.0.1:{counting.port}": throttle})
    p.send("a@example.com", "r1@example.com", MESSAGE)
    p.send("a@example.com", "r2@example.com", MESSAGE)
    with pytest.raises(Throttled) as held:
        p.send("a@example.com", "r3@example.com", MESSAGE)
    assert 1700 < held.value.retry_after <= 1800  # half an hour until the next token
    assert len(counting.handler.received) == 2


def test_relay_list_parses_in_failover_order() -> None:
    relays = parse_relays("smtp://u:p%40ss@a.example:587?tls=starttls, smtps://b.example")
    assert relays == [
        Relay("a.example", 587, "starttls", "u", "p@ss"),
        Relay("b.example", 465, "ssl", None, None),
    ]


def test_relay_list_with_a_bad_entry_is_explained() -> None:
    with pytest.raises(TransportConfigError, match="is not an SMTP relay"):
        parse_relays("smtp://a.example, ftp://b.example")


class Authenticated(SMTPServer):
    """A server that demands AUTH (over plain text: the test has no certificate)."""

    def __init__(self, username: str, password: str) -> None:
        def authenticator(server: object, session: object, envelope: object,
                          mechanism: str, data: object) -> AuthResult:  # fmt: skip
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                username.encode(), password.encode(),
            )  # fmt: skip
            return AuthResult(success=ok, handled=False)

        super().__init__(authenticator=authenticator, auth_require_tls=False)


@pytest.fixture
def auth_server() -> Iterator[Authenticated]:
    server = Authenticated("mailer", "s3cret:pass")
    server.start()
    yield server
    server.stop()


def from_url(url: str) -> SMTPPool:
    transport = transport_from_url(url, outbox_dir=Path("unused"))
    assert isinstance(transport, SMTPPool)
    _open.append(transport)
    return transport


def test_credentials_in_the_url_log_in(auth_server: Authenticated) -> None:
    from_url(f"smtp://mailer:s3cret%3Apass@127.0.0.1:{auth_server.port}").send(
        "a@example.com", "b@example.com", MESSAGE
    )
    assert [r.recipients for r in auth_server.handler.received] == [["b@example.com"]]


def test_wrong_password_is_reported_as_refused_login(auth_server: Authenticated) -> None:
    t = from_url(f"smtp://mailer:wrong@127.0.0.1:{auth_server.port}")
    with pytest.raises(ConnectionLost, match="login refused"):
        t.send("a@example.com", "b@example.com", MESSAGE)
