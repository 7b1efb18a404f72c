"""Issue 10, finding 8: a URL someone hands us (`posts import URL`, `feeds add` and every
poll after it) must not reach into this machine or its network, not even by a redirect or a
DNS answer that changes, must be http(s), and must not hold an import past its deadline.

Real servers on this machine stand in for the internal services a hostile URL would reach:
each test shows the operator's view (exit status, the one line, the rows) and that the
server behind the URL was never asked."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.feeds import add_feed, poll_feed
from newsletter.models import Feed, Post
from newsletter.posts import fetch
from newsletter.posts.fetch import PRIVATE_HINT
from tests.cli_runner import run
from tests.feed_server import SAMPLE_FEED, Answer, FeedServer

NOW = datetime(2025, 5, 16, 7, 30, tzinfo=UTC)
LOOPBACK = "127.0.0.1 is a loopback address"
PUBLIC_STAND_IN = "127.0.0.2"  # a server on this machine that the tests treat as a public site

# Every spelling of "this machine" the finding fetched from, and what the refusal says.
HOSTILE = [
    ("http://127.0.0.1:{port}/feed.xml", re.escape(LOOPBACK)),
    ("http://localhost:{port}/feed.xml",
     r"localhost resolves to (127\.0\.0\.1|::1), a loopback address"),
    ("http://[::1]:{port}/feed.xml", re.escape("::1 is a loopback address")),
    ("http://0.0.0.0:{port}/feed.xml", re.escape("0.0.0.0 is an unspecified address")),
    ("http://2130706433:{port}/feed.xml",
     re.escape("2130706433 resolves to 127.0.0.1, a loopback address")),
    ("http://0x7f.1:{port}/feed.xml",
     re.escape("0x7f.1 resolves to 127.0.0.1, a loopback address")),
    ("http://10.1.2.3:{port}/feed.xml", re.escape("10.1.2.3 is a private address")),
    ("http://169.254.169.254/latest/meta-data/",
     re.escape("169.254.169.254 is a link-local address")),
    ("http://[::ffff:127.0.0.1]:{port}/", re.escape("::ffff:127.0.0.1 is a loopback address")),
    ("http://224.0.0.1:{port}/feed.xml", re.escape("224.0.0.1 is a multicast address")),
]  # fmt: skip


@pytest.fixture
def internal() -> Iterator[FeedServer]:
    """An internal service on loopback, serving a feed to whoever asks."""
    with FeedServer() as server:
        server.serve("/feed.xml", Answer(body=SAMPLE_FEED))
        yield server


@pytest.fixture
def public(monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedServer]:
    """A server on 127.0.0.2 that the address check treats as a public web site."""
    real = fetch.refusal
    monkeypatch.setattr(fetch, "refusal", lambda a: None if a == PUBLIC_STAND_IN else real(a))
    with FeedServer(PUBLIC_STAND_IN) as server:
        yield server


@pytest.fixture
def private_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NEWSLETTER_ALLOW_PRIVATE_FEEDS", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def refused(prefix: str, why: str) -> str:
    return re.escape(f"error: {prefix}: ") + why + re.escape(f"; {PRIVATE_HINT}")


def test_private_feeds_are_refused_by_default(settings: Settings) -> None:
    assert settings.allow_private_feeds is False


# --- Internal addresses --------------------------------------------------------------------


@pytest.mark.parametrize(("template", "why"), HOSTILE)
def test_import_of_an_internal_address_is_refused(
    session: Session, internal: FeedServer, template: str, why: str
) -> None:
    url = template.format(port=internal.httpd.server_address[1])
    code, output = run("posts", "import", url)
    assert code == 1
    assert re.fullmatch(refused(f"could not import {url}", why), output), output
    assert internal.requests == []
    assert count(session, Post) == 0


@pytest.mark.parametrize(("template", "why"), HOSTILE)
def test_a_feed_on_an_internal_address_is_refused_when_added(
    session: Session, internal: FeedServer, template: str, why: str
) -> None:
    url = template.format(port=internal.httpd.server_address[1])
    code, output = run("feeds", "add", url)
    assert code == 1
    assert re.fullmatch(refused(f"{url} cannot be polled", why), output), output
    assert count(session, Feed) == 0


def test_a_stored_feed_on_an_internal_address_is_refused_at_every_poll(
    session: Session, settings: Settings, internal: FeedServer
) -> None:
    # Added while the install allowed private feeds; it no longer does.
    feed = add_feed(session, internal.url("/feed.xml"), now=NOW, allow_private=True)
    result = poll_feed(session, feed, NOW, settings)
    assert not result.ok
    assert feed.last_error == f"{LOOPBACK}; {PRIVATE_HINT}"
    assert internal.requests == []
    assert count(session, Post) == 0


def test_a_redirect_to_an_internal_address_is_refused(
    session: Session, public: FeedServer, internal: FeedServer
) -> None:
    target = internal.url("/feed.xml")
    url = public.serve("/feed.xml", Answer(302, headers={"Location": target}))
    code, output = run("posts", "import", url)
    assert code == 1
    assert output == (
        f"error: could not import {url}: it redirects to {target}: {LOOPBACK}; {PRIVATE_HINT}"
    )
    assert [path for path, _ in public.requests] == ["/feed.xml"]
    assert internal.requests == []
    assert count(session, Post) == 0


def test_a_polled_feed_that_redirects_to_an_internal_address_is_refused(
    session: Session, settings: Settings, public: FeedServer, internal: FeedServer
) -> None:
    target = internal.url("/feed.xml")
    feed = add_feed(
        session, public.serve("/rss", Answer(301, headers={"Location": target})), now=NOW
    )
    poll_feed(session, feed, NOW, settings)
    assert feed.last_error == f"it redirects to {target}: {LOOPBACK}; {PRIVATE_HINT}"
    assert internal.requests == []


def test_the_address_checked_is_the_address_connected_to(
    session: Session, public: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebinding DNS server answers a public address first, then loopback: the fetch
    connects to the address it checked, without asking DNS again."""
    url = public.serve("/feed.xml", Answer(body=SAMPLE_FEED)).replace(
        PUBLIC_STAND_IN, "rebinding.example"
    )
    real_getaddrinfo = socket.getaddrinfo
    answers = iter([PUBLIC_STAND_IN])

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != "rebinding.example":
            return real_getaddrinfo(host, *args, **kwargs)
        return real_getaddrinfo(next(answers, "127.0.0.1"), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    code, output = run("posts", "import", url)
    assert code == 0, output
    assert "Imported 15 posts: 15 new" in output
    assert [path for path, _ in public.requests] == ["/feed.xml"]


def test_an_install_that_allows_private_feeds_imports_from_its_network(
    session: Session, internal: FeedServer, private_allowed: None
) -> None:
    code, _ = run("posts", "import", internal.url("/feed.xml"))
    assert code == 0
    assert count(session, Post) == 15


# --- Schemes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/feed.xml", "gopher://127.0.0.1:70/_x"]
)
def test_import_of_a_url_that_is_not_http_is_refused(session: Session, url: str) -> None:
    code, output = run("posts", "import", url)
    assert code == 1
    assert output == f"error: could not import {url}: only http and https URLs are fetched"
    assert count(session, Post) == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x"])
def test_a_feed_that_is_not_http_is_refused(session: Session, url: str) -> None:
    code, output = run("feeds", "add", url)
    assert code == 1
    assert output == (f"error: {url!r} is not an http(s) URL such as https://example.com/feed.xml")
    assert count(session, Feed) == 0


def test_a_redirect_to_a_file_is_refused(
    session: Session, settings: Settings, public: FeedServer
) -> None:
    url = public.serve("/rss", Answer(302, headers={"Location": "file:///etc/passwd"}))
    feed = add_feed(session, url, now=NOW)
    poll_feed(session, feed, NOW, settings)
    assert feed.last_error == "it redirects to file:///etc/passwd, which is not an http(s) URL"


# --- The deadline --------------------------------------------------------------------------


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch, private_allowed: None) -> None:
    monkeypatch.setenv("NEWSLETTER_FEED_TIMEOUT", "0.5")
    get_settings.cache_clear()


@pytest.fixture
def header_drip() -> Iterator[str]:
    """A server that sends its status line, then one byte of headers every 50 ms, forever:
    every read gets a byte well within any per-read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not stop.wait(0.05):
                try:
                    connection.sendall(b"a")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml"
    stop.set()
    listener.close()


def test_a_server_dripping_its_headers_is_cut_off_at_the_deadline(
    session: Session, impatient: None, header_drip: str
) -> None:
    started = time.monotonic()
    code, output = run("posts", "import", header_drip)
    assert time.monotonic() - started < 2
    assert code == 1
    assert output == f"error: could not import {header_drip}: no complete answer within 0.5 seconds"


def test_a_server_dripping_its_body_is_cut_off_at_the_deadline(
    session: Session, impatient: None, internal: FeedServer
) -> None:
    # 1,000 bytes every 0.1 s: about 4 seconds for the sample feed.
    url = internal.serve("/slow.xml", Answer(body=SAMPLE_FEED, drip=0.1))
    started = time.monotonic()
    code, output = run("posts", "import", url)
    assert time.monotonic() - started < 2
    assert code == 1
    assert output == f"error: could not import {url}: no complete answer within 0.5 seconds"
    assert count(session, Post) == 0


def test_an_answer_over_the_size_limit_is_refused(
    session: Session, internal: FeedServer, private_allowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_MAX_IMPORT_BYTES", "10000")
    get_settings.cache_clear()
    url = internal.serve("/big.xml", Answer(body=SAMPLE_FEED, declare_length=False))
    code, output = run("posts", "import", url)
    assert code == 1
    limit = "the answer is larger than the 10,000-byte limit"
    assert output == f"error: could not import {url}: {limit}"
