"""Issue 10, finding 6: X-Forwarded-For is believed only from a trusted proxy, and then only
its rightmost untrusted hop, so a client can neither dodge the per-IP signup limit nor write
an address of its choosing into the consent log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.cli.serve import uvicorn_config
from newsletter.clock import FrozenClock
from newsletter.config import ConfigurationError, Settings
from newsletter.models import ConsentEvent, NewsletterList
from newsletter.web import create_app
from newsletter.web.forwarded import TrustedProxies
from tests.security.conftest import TRUSTED_PROXY
from tests.web.conftest import USER_AGENT, RecordingHandoff

PROXY = TRUSTED_PROXY
ATTACKER = "203.0.113.9"

PeerClient = Callable[..., TestClient]


@pytest.fixture
def from_peer(
    settings: Settings, handoff: RecordingHandoff, clock: FrozenClock
) -> Iterator[PeerClient]:
    """A client of a fresh app that connects from a given address, the way a socket would."""
    clients: list[TestClient] = []

    def build(peer: str, **overrides: object) -> TestClient:
        changed = settings.model_copy(
            update={"redis_url": "", "trusted_proxies": PROXY, **overrides}
        )
        app = create_app(changed, handoff=handoff, clock=clock)
        client = TestClient(app, client=(peer, 40000), headers={"user-agent": USER_AGENT})
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def sign_up(client: TestClient, email: str, forwarded_for: str) -> httpx.Response:
    return client.post(
        "/api/v1/subscriptions",
        json={"email": email, "lists": ["daily"]},
        headers={"x-forwarded-for": forwarded_for},
    )


def logged_ips(session: Session) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(ConsentEvent.ip).order_by(ConsentEvent.id)))


def test_an_untrusted_peer_is_logged_by_its_own_address(
    from_peer: PeerClient, session: Session, lists: list[NewsletterList]
) -> None:
    client = from_peer(ATTACKER)

    response = sign_up(client, "ada@example.com", "1.2.3.4")

    assert response.status_code == 202
    assert logged_ips(session) == [ATTACKER]


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(
    from_peer: PeerClient, session: Session, lists: list[NewsletterList]
) -> None:
    client = from_peer(PROXY)

    response = sign_up(client, "ada@example.com", "1.2.3.4, 5.6.7.8")

    assert response.status_code == 202
    assert logged_ips(session) == ["5.6.7.8"]


def test_a_chain_of_trusted_proxies_is_walked_past(
    from_peer: PeerClient, session: Session, lists: list[NewsletterList]
) -> None:
    client = from_peer(PROXY, trusted_proxies="10.0.0.0/8, 192.0.2.1")

    response = sign_up(client, "ada@example.com", "1.2.3.4, 198.51.100.7, 192.0.2.1, 10.1.2.3")

    assert response.status_code == 202
    assert logged_ips(session) == ["198.51.100.7"]


def test_spoofed_leftmost_hops_do_not_reset_the_per_ip_limit(
    from_peer: PeerClient, session: Session, lists: list[NewsletterList]
) -> None:
    client = from_peer(PROXY, signup_rate_limit_per_ip="2/minute")

    answers = [
        sign_up(client, f"reader{i}@example.com", f"100.64.0.{i}, {ATTACKER}").status_code
        for i in range(3)
    ]

    assert answers == [202, 202, 429]
    assert logged_ips(session) == [ATTACKER, ATTACKER]


def test_an_untrusted_peer_cannot_rotate_its_address_in_the_header(
    from_peer: PeerClient, session: Session, lists: list[NewsletterList]
) -> None:
    client = from_peer(ATTACKER, signup_rate_limit_per_ip="2/minute")

    answers = [
        sign_up(client, f"reader{i}@example.com", f"100.64.0.{i}").status_code for i in range(3)
    ]

    assert answers == [202, 202, 429]


def test_with_no_trusted_proxy_even_localhost_is_taken_at_its_word(
    from_peer: PeerClient, session: Session, lists: list[NewsletterList]
) -> None:
    client = from_peer("127.0.0.1", trusted_proxies="")

    assert sign_up(client, "ada@example.com", "1.2.3.4").status_code == 202
    assert logged_ips(session) == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        (PROXY, [], PROXY),  # a proxy that adds nothing is the client
        (PROXY, ["1.2.3.4", "5.6.7.8"], "5.6.7.8"),  # two header lines read as one list
        (PROXY, ["1.2.3.4, not-an-ip"], PROXY),  # garbage is not believed
        (PROXY, ["1.2.3.4, ::ffff:5.6.7.8"], "5.6.7.8"),
        (PROXY, ["2001:db8::1"], "2001:db8::1"),
        (PROXY, [f"{PROXY}, {PROXY}"], PROXY),
        ("::ffff:10.0.0.1", ["5.6.7.8"], "5.6.7.8"),
        ("testclient", ["5.6.7.8"], "testclient"),
    ],
)
def test_client_address(peer: str, forwarded: list[str], client: str) -> None:
    assert TrustedProxies(PROXY).client_address(peer, forwarded) == client


def test_a_trusted_proxy_that_is_not_an_address_is_refused_at_startup(settings: Settings) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(trusted_proxies="127.0.0.1, proxy.internal")

    [error] = raised.value.errors()
    cause = error.get("ctx", {}).get("error")
    assert isinstance(cause, ConfigurationError)
    assert "'proxy.internal' is not an IP address" in str(cause)


def test_serve_leaves_proxy_headers_to_the_app() -> None:
    config = uvicorn_config("127.0.0.1", 8000, 1, access_log=True)

    assert config.proxy_headers is False


def test_served_app_logs_the_peer_not_the_forged_header(
    served: tuple[str, Path], session: Session, lists: list[NewsletterList]
) -> None:
    url, log = served

    response = httpx.post(
        f"{url}/api/v1/subscriptions",
        json={"email": "ada@example.com", "lists": ["daily"]},
        headers={"x-forwarded-for": "1.2.3.4"},
        timeout=10,
    )

    assert response.status_code == 202
    assert logged_ips(session) == ["127.0.0.1"]
    access = [line for line in log.read_text().splitlines() if "/api/v1/subscriptions" in line]
    assert access, log.read_text()
    assert access[0].split()[1].startswith("127.0.0.1:"), access
