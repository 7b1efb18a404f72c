"""Issue 10, finding 7: editor sign-in and sessions.

- Sign-in is throttled per account and per IP, through the shared Redis, with the same answers
  for unknown addresses and wrong passwords; past a limit even the right password gets a 429
  with Retry-After.
- A session lives a fixed 12 hours from sign-in, however busy, and signing out ends it on the
  server: a copied cookie is worthless afterwards.
- A deactivated editor can neither sign in nor use an API token, and their open sessions end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.editors.service import (
    create_editor,
    create_token,
    deactivate_editor,
    find_editor,
)
from newsletter.models import Editor, EditorSession
from newsletter.web import create_app
from newsletter.web.admin.login import WRONG
from tests.web.conftest import (
    EDITOR_EMAIL,
    EDITOR_PASSWORD,
    USER_AGENT,
    RecordingHandoff,
    csrf_of,
    error_paragraph,
    log_in,
)

ATTACKER = "203.0.113.9"
COOKIE = "nl_admin"
THROTTLED = "Too many sign-in attempts."


class Browsers:
    """Clients of one app (or of several apps sharing a Redis), each from its own address."""

    def __init__(self, settings: Settings, handoff: RecordingHandoff, clock: FrozenClock) -> None:
        self.settings, self.handoff, self.clock = settings, handoff, clock
        self.opened: list[TestClient] = []
        self.app = self.new_app()

    def new_app(self, **overrides: object) -> FastAPI:
        changed = self.settings.model_copy(update={"redis_url": "", **overrides})
        return create_app(changed, handoff=self.handoff, clock=self.clock)

    def open(self, peer: str = ATTACKER, app: FastAPI | None = None) -> TestClient:
        client = TestClient(
            app or self.app,
            base_url="https://testserver",  # the session cookie is Secure
            client=(peer, 40000),
            headers={"user-agent": USER_AGENT},
        )
        client.__enter__()
        self.opened.append(client)
        return client


@pytest.fixture
def browsers(settings: Settings, clock: FrozenClock) -> Iterator[Browsers]:
    made = Browsers(settings, RecordingHandoff(), clock)
    yield made
    for client in made.opened:
        client.__exit__(None, None, None)


@pytest.fixture
def editor(session: Session) -> Editor:
    created = create_editor(session, EDITOR_EMAIL, EDITOR_PASSWORD, name="Ed Itor")
    session.commit()
    return created


def try_login(client: TestClient, email: str, password: str) -> httpx.Response:
    token = csrf_of(client.get("/admin/login").text)
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def admin_home(client: TestClient, cookie: str | None = None) -> httpx.Response:
    headers = {"cookie": f"{COOKIE}={cookie}"} if cookie else None
    return client.get("/admin", headers=headers, follow_redirects=False)


def signed_out(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/admin/login")


def sessions_of(session: Session, editor: Editor) -> list[EditorSession]:
    session.expire_all()
    query = select(EditorSession).where(EditorSession.editor_id == editor.id)
    return list(session.scalars(query.order_by(EditorSession.id)))


# Throttling


def test_the_right_password_after_five_wrong_ones_gets_429_with_retry_after(
    browsers: Browsers, editor: Editor, caplog: pytest.LogCaptureFixture
) -> None:
    client = browsers.open()
    for _ in range(5):
        wrong = try_login(client, EDITOR_EMAIL, "not the password at all")
        assert wrong.status_code == 400
        assert error_paragraph(wrong.text) == WRONG

    right = try_login(client, EDITOR_EMAIL, EDITOR_PASSWORD)

    assert right.status_code == 429
    assert 0 < int(right.headers["retry-after"]) <= 15 * 60
    assert error_paragraph(right.text).startswith(THROTTLED)
    assert "please wait 15 minutes" in error_paragraph(right.text)
    assert signed_out(admin_home(client)), "no session came out of the throttled attempt"
    assert f"editor sign-in throttled: client {ATTACKER}" in caplog.text, "for the operator"


def test_an_unknown_address_is_answered_exactly_like_a_wrong_password(
    browsers: Browsers, editor: Editor
) -> None:
    """Same statuses, same words, attempt by attempt: the form does not tell who exists."""
    real = browsers.open("198.51.100.1")
    unknown = browsers.open("198.51.100.2")
    for _ in range(6):
        a = try_login(real, EDITOR_EMAIL, "not the password at all")
        b = try_login(unknown, "nobody@shortlysts.example.com", "not the password at all")
        assert (a.status_code, error_paragraph(a.text)) == (
            b.status_code, error_paragraph(b.text),
        )  # fmt: skip
    assert (a.status_code, b.status_code) == (429, 429)
    assert int(a.headers["retry-after"]) > 0
    assert int(b.headers["retry-after"]) > 0


def test_spelling_the_address_differently_does_not_reset_the_account_count(
    browsers: Browsers, editor: Editor
) -> None:
    client = browsers.open()
    for spelling in ("editor@shortlysts.example.com", "EDITOR@Shortlysts.example.com",
                     " editor@shortlysts.example.com ", "Editor@SHORTLYSTS.EXAMPLE.COM",
                     "editor@shortlysts.example.com"):  # fmt: skip
        assert try_login(client, spelling, "wrong guess, wrong guess").status_code == 400
    assert try_login(client, EDITOR_EMAIL, EDITOR_PASSWORD).status_code == 429


def test_one_address_guessing_many_accounts_is_throttled_per_ip(
    browsers: Browsers, editor: Editor
) -> None:
    attacker = browsers.open()
    for n in range(20):
        assert try_login(attacker, f"guess{n}@example.com", "password123456").status_code == 400

    refused = try_login(attacker, EDITOR_EMAIL, EDITOR_PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0

    # The editor, from their own network, is not locked out by it.
    assert (
        try_login(browsers.open("198.51.100.7"), EDITOR_EMAIL, EDITOR_PASSWORD).status_code == 303
    )


def test_a_successful_sign_in_clears_the_accounts_count(browsers: Browsers, editor: Editor) -> None:
    client = browsers.open()
    for _ in range(4):
        assert try_login(client, EDITOR_EMAIL, "a typo in the password").status_code == 400
    assert try_login(client, EDITOR_EMAIL, EDITOR_PASSWORD).status_code == 303
    for _ in range(4):
        assert try_login(client, EDITOR_EMAIL, "a typo in the password").status_code == 400


def test_failures_count_across_app_processes_through_redis(
    browsers: Browsers, editor: Editor, redis_url: str
) -> None:
    """Two app processes (one per web worker) share one count: a round-robin of guesses
    over several workers gets no more tries than one worker would allow."""
    # Redis outlives the test: an address and an account of this run only.
    peer = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    victim = f"victim-{uuid.uuid4().hex[:12]}@shortlysts.example.com"
    workers = [browsers.open(peer, browsers.new_app(redis_url=redis_url)) for _ in range(2)]
    for attempt in range(5):
        answer = try_login(workers[attempt % 2], victim, "guess guess guess")
        assert answer.status_code == 400
    assert try_login(workers[1], victim, "guess guess guess").status_code == 429
    assert try_login(workers[0], victim, "guess guess guess").status_code == 429


# Sessions


def test_a_copied_cookie_stops_working_after_sign_out(
    browsers: Browsers, editor: Editor, session: Session
) -> None:
    victim = browsers.open("198.51.100.1")
    csrf = log_in(victim)
    stolen = victim.cookies[COOKIE]
    thief = browsers.open()
    assert admin_home(thief, stolen).status_code == 200, "the copy works while signed in"

    out = victim.post("/admin/logout", data={"csrf_token": csrf}, follow_redirects=False)

    assert out.status_code == 303
    assert signed_out(admin_home(thief, stolen))
    assert signed_out(admin_home(victim))
    [row] = sessions_of(session, editor)
    assert row.ended_at == browsers.clock()


def test_signing_out_one_browser_leaves_the_others_signed_in(
    browsers: Browsers, editor: Editor
) -> None:
    laptop, phone = browsers.open("198.51.100.1"), browsers.open("198.51.100.2")
    csrf = log_in(laptop)
    log_in(phone)
    laptop.post("/admin/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert signed_out(admin_home(laptop))
    assert admin_home(phone).status_code == 200


def test_a_session_ends_12_hours_after_sign_in_however_busy(
    browsers: Browsers, editor: Editor, session: Session
) -> None:
    signed_in_at = browsers.clock()
    client = browsers.open()
    log_in(client)
    for _ in range(11):  # a page every hour: each answer re-issues the cookie
        browsers.clock.advance(timedelta(hours=1))
        assert admin_home(client).status_code == 200
    browsers.clock.advance(timedelta(minutes=59, seconds=59))
    assert admin_home(client).status_code == 200

    browsers.clock.advance(timedelta(seconds=1))

    assert signed_out(admin_home(client))
    [row] = sessions_of(session, editor)
    assert row.expires_at == signed_in_at + timedelta(hours=12)


def test_the_session_lifetime_is_a_setting(browsers: Browsers, editor: Editor) -> None:
    client = browsers.open(app=browsers.new_app(editor_session_hours=1))
    log_in(client)
    browsers.clock.advance(timedelta(minutes=61))
    assert signed_out(admin_home(client))


def test_signing_in_again_starts_a_new_session_not_the_old_one(
    browsers: Browsers, editor: Editor
) -> None:
    """A cookie planted before sign-in (session fixation) is not the one signed in."""
    client = browsers.open()
    client.get("/admin/login")
    before = client.cookies[COOKIE]
    log_in(client)
    assert signed_out(admin_home(browsers.open(), before))


# Deactivation


def test_a_deactivated_editor_cannot_sign_in(
    browsers: Browsers, editor: Editor, session: Session
) -> None:
    deactivate_editor(session, find_editor(session, EDITOR_EMAIL), now=browsers.clock())
    session.commit()
    client = browsers.open()

    right = try_login(client, EDITOR_EMAIL, EDITOR_PASSWORD)
    assert right.status_code == 403
    assert "has been deactivated" in error_paragraph(right.text)
    assert signed_out(admin_home(client))
    # Without the password nobody learns the account exists, nor that it is deactivated.
    wrong = try_login(client, EDITOR_EMAIL, "not the password at all")
    assert (wrong.status_code, error_paragraph(wrong.text)) == (400, WRONG)


def test_deactivation_ends_the_editors_open_sessions(
    browsers: Browsers, editor: Editor, session: Session
) -> None:
    client = browsers.open()
    log_in(client)
    deactivate_editor(session, find_editor(session, EDITOR_EMAIL), now=browsers.clock())
    session.commit()
    assert signed_out(admin_home(client))
    assert all(row.ended_at is not None for row in sessions_of(session, editor))


def test_a_deactivated_editors_api_token_is_refused_with_403(
    browsers: Browsers, editor: Editor, session: Session
) -> None:
    secret = create_token(session, editor, "cms").secret
    session.commit()
    api = browsers.open()
    auth = {"authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/editions", headers=auth).status_code == 200

    deactivate_editor(session, find_editor(session, EDITOR_EMAIL), now=browsers.clock())
    session.commit()

    refused = api.get("/api/v1/editions", headers=auth)
    assert refused.status_code == 403
    assert "has been deactivated" in refused.json()["detail"]
