"""The reader web app in-process: a fresh app per test (so rate limits start at zero), a
notifier that records instead of mailing, a transport that refuses one reader, and helpers
to look at what reached the database."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.delivery.errors import PermanentFailure
from newsletter.delivery.fanout import BatchRange
from newsletter.delivery.transports import MemoryTransport
from newsletter.editors.service import create_editor, create_token
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import ConsentEvent, Editor, NewsletterList, Subscriber, Subscription
from newsletter.web import create_app

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) test-browser/1.0"


@dataclass
class Notice:
    kind: str
    subscriber_id: int
    list_ids: list[int]


@dataclass
class RecordingHandoff:
    """Stands in for the workers: remembers the work the app handed over, after its commit."""

    calls: list[Notice] = field(default_factory=list)  # notices to readers
    sent: list[int] = field(default_factory=list)  # editions to send
    tests: list[tuple[int, str]] = field(default_factory=list)  # [TEST] copies
    batches: list[BatchRange] = field(default_factory=list)

    def send_notice(self, kind: str, subscriber_id: int, list_ids: list[int]) -> None:
        self.calls.append(Notice(kind, subscriber_id, list(list_ids)))

    def of_kind(self, kind: str) -> list[Notice]:
        return [call for call in self.calls if call.kind == kind]

    def send_edition(self, edition_id: int) -> None:
        self.sent.append(edition_id)

    def send_test(self, edition_id: int, address: str) -> None:
        self.tests.append((edition_id, address))

    def deliver(self, batch: BatchRange, *, countdown: float = 0, retries: int = 0) -> None:
        self.batches.append(batch)


class RefusingTransport(MemoryTransport):
    """Accepts every message except those to ``refused``, which get a 550."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        if recipient == self.refused:
            raise PermanentFailure("550 5.1.1 mailbox unknown", code=550)
        super().send(sender, recipient, message)


# The same recorder, by the name of what a test looks at.
RecordingNotifier = RecordingHandoff
RecordingEditionSender = RecordingHandoff


@dataclass(frozen=True)
class Rows:
    subscribers: int
    subscriptions: int
    consent_events: int


def count_rows(session: Session) -> Rows:
    """Row counts as committed by the app (which writes through its own sessions)."""
    session.expire_all()
    return Rows(
        subscribers=session.scalar(select(func.count()).select_from(Subscriber)) or 0,
        subscriptions=session.scalar(select(func.count()).select_from(Subscription)) or 0,
        consent_events=session.scalar(select(func.count()).select_from(ConsentEvent)) or 0,
    )


NO_ROWS = Rows(0, 0, 0)


def make_list(session: Session, slug: str, name: str, description: str = "") -> NewsletterList:
    nl = create_list(
        session,
        ListSpec(
            slug=slug,
            name=name,
            description=description,
            from_address=f"{slug}@shortlysts.example.com",
            from_name="Shortlysts",
        ),
    )
    session.commit()
    return nl


@pytest.fixture
def handoff() -> RecordingHandoff:
    return RecordingHandoff()


@pytest.fixture
def notifier(handoff: RecordingHandoff) -> RecordingHandoff:
    return handoff


AppFactory = Callable[..., TestClient]


@pytest.fixture
def edition_sender(handoff: RecordingHandoff) -> RecordingHandoff:
    return handoff


@pytest.fixture
def make_client(
    session: Session, settings: Settings, handoff: RecordingHandoff, clock: FrozenClock,
) -> Iterator[AppFactory]:  # fmt: skip
    """Build a client on a fresh app, optionally with changed settings."""
    clients: list[TestClient] = []

    def build(
        *, raise_server_exceptions: bool = True, headers: dict[str, str] | None = None,
        **overrides: object,
    ) -> TestClient:  # fmt: skip
        # Rate limits in this app's own memory, even when an earlier test (the live server)
        # pointed the process at Redis: every test starts with fresh limits.
        changed = settings.model_copy(update={"redis_url": "", **overrides})
        app: FastAPI = create_app(changed, handoff=handoff, clock=clock)
        test_client = TestClient(
            app,
            headers={"user-agent": USER_AGENT, **(headers or {})},
            raise_server_exceptions=raise_server_exceptions,
        )
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield build
    for test_client in clients:
        test_client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    return make_client()


@pytest.fixture
def lists(session: Session) -> list[NewsletterList]:
    """Two lists a reader can choose from."""
    return [
        make_list(session, "daily", "Shortlysts Daily", "Every morning's top stories."),
        make_list(session, "tech", "Shortlysts Tech", "Technology news, once a day."),
    ]


_TAGS = re.compile(r"<[^>]+>")


def visible_text(page: str) -> str:
    """The text a reader sees inside <main>, tags stripped and whitespace collapsed."""
    match = re.search(r"<main[^>]*>(.*)</main>", page, re.S)
    body = match.group(1) if match else page
    return html.unescape(" ".join(_TAGS.sub(" ", body).split()))


def error_paragraph(page: str) -> str:
    """The error a page shows: the form's alert box, or the message page's paragraphs."""
    alert = re.search(r'<p class="error"[^>]*>(.*?)</p>', page, re.S)
    if alert:
        return html.unescape(" ".join(_TAGS.sub(" ", alert.group(1)).split()))
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S)
    paragraphs = re.findall(r"<p>(.*?)</p>", page, re.S)
    if heading and paragraphs:
        return html.unescape(" ".join(_TAGS.sub(" ", " ".join(paragraphs)).split()))
    return ""


EDITOR_EMAIL = "editor@shortlysts.example.com"
EDITOR_PASSWORD = "correct horse battery staple"


@pytest.fixture
def editor(session: Session) -> Editor:
    created = create_editor(session, EDITOR_EMAIL, EDITOR_PASSWORD, name="Ed Itor")
    session.commit()
    return created


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def log_in(test_client: TestClient, email: str = EDITOR_EMAIL,
           password: str = EDITOR_PASSWORD) -> str:  # fmt: skip
    """Sign in through the login form; returns the session's CSRF token."""
    token = csrf_of(test_client.get("/admin/login").text)
    response = test_client.post(
        "/admin/login", data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303, response.text
    return csrf_of(test_client.get("/admin").text)


@dataclass
class AdminClient:
    client: TestClient
    csrf: str

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A form post with this session's CSRF token, not following redirects."""
        kwargs.setdefault("follow_redirects", False)
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)


@pytest.fixture
def admin(make_client: AppFactory, editor: Editor) -> AdminClient:
    """A client signed in as ``editor``."""
    test_client = make_client()
    # The session cookie is Secure (the test base URL is https): only sent back over https.
    test_client.base_url = "https://testserver"
    return AdminClient(test_client, log_in(test_client))


@pytest.fixture
def api_token(session: Session, editor: Editor) -> str:
    issued = create_token(session, editor, "cms")
    session.commit()
    return issued.secret


@pytest.fixture
def api(make_client: AppFactory, api_token: str) -> TestClient:
    """A client of the editor API with a valid bearer token."""
    return make_client(headers={"authorization": f"Bearer {api_token}"})
