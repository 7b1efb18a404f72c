"""The SMTP transport against a real server: replies become the right delivery errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.delivery.errors import ConnectionLost, PermanentFailure, TemporaryFailure
from newsletter.delivery.transports import SMTPTransport, transport_from_url
from newsletter.runtime import free_port
from tests.smtp_server import RecordingHandler, SMTPServer

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


def transport(server: SMTPServer) -> SMTPTransport:
    built = transport_from_url(server.url, outbox_dir=Path("unused"), timeout=5)
    assert isinstance(built, SMTPTransport)
    return built


def test_one_connection_serves_many_messages(
    smtp_server: SMTPServer, smtp: RecordingHandler
) -> None:
    with transport(smtp_server) as t:
        for i in range(5):
            t.send("a@example.com", f"r{i}@example.com", MESSAGE)
        connection = t._connection
    assert len(smtp.received) == 5
    assert connection is not None


def test_5xx_reply_is_permanent(smtp_server: SMTPServer, smtp: RecordingHandler) -> None:
    smtp.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    with (
        transport(smtp_server) as t,
        pytest.raises(PermanentFailure, match=r"550 5\.1\.1 no such user"),
    ):
        t.send("a@example.com", "gone@example.com", MESSAGE)


def test_4xx_reply_is_temporary_and_the_connection_goes_on(
    smtp_server: SMTPServer, smtp: RecordingHandler
) -> None:
    smtp.rcpt_replies["full@example.com"] = "452 4.2.2 mailbox full"
    with transport(smtp_server) as t:
        with pytest.raises(TemporaryFailure, match="452"):
            t.send("a@example.com", "full@example.com", MESSAGE)
        t.send("a@example.com", "ok@example.com", MESSAGE)
    assert [r.recipients for r in smtp.received] == [["ok@example.com"]]


def test_unreachable_server_is_a_lost_connection() -> None:
    t = SMTPTransport(host="127.0.0.1", port=free_port(), timeout=2)
    with t, pytest.raises(ConnectionLost, match="cannot reach"):
        t.send("a@example.com", "b@example.com", MESSAGE)


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


def test_credentials_in_the_url_log_in(auth_server: Authenticated) -> None:
    url = f"smtp://mailer:s3cret%3Apass@127.0.0.1:{auth_server.port}"
    with transport_from_url(url, outbox_dir=Path("unused")) as t:
        t.send("a@example.com", "b@example.com", MESSAGE)
    assert [r.recipients for r in auth_server.handler.received] == [["b@example.com"]]


def test_wrong_password_is_reported_as_refused_login(auth_server: Authenticated) -> None:
    url = f"smtp://mailer:wrong@127.0.0.1:{auth_server.port}"
    with (
        transport_from_url(url, outbox_dir=Path("unused")) as t,
        pytest.raises(ConnectionLost, match="login refused"),
    ):
        t.send("a@example.com", "b@example.com", MESSAGE)
