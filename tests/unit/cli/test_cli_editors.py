"""``newsletter editors`` as an operator uses it: deactivating an editor locks them out of the
admin and the API at once; a new password signs them out of every browser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.cli import app, common
from newsletter.clock import FrozenClock
from newsletter.editors.service import (
    authenticate,
    create_editor,
    create_token,
    editor_for_session,
    editor_for_token,
    start_session,
)
from newsletter.models import ApiToken, Editor, EditorSession
from tests.cli_runner import run, runner

EMAIL = "ed@shortlysts.example.com"
PASSWORD = "correct horse battery staple"
LIFETIME = timedelta(hours=12)


@pytest.fixture(autouse=True)
def cli_clock(clock: FrozenClock) -> Iterator[FrozenClock]:
    common.use_clock(clock)
    yield clock
    common.use_clock(None)


@pytest.fixture
def editor(session: Session) -> Editor:
    created = create_editor(session, EMAIL, PASSWORD)
    session.commit()
    return created


def test_deactivate_locks_the_editor_out_of_everything(
    session: Session, editor: Editor, clock: FrozenClock
) -> None:
    browsers = [start_session(session, editor, now=clock(), lifetime=LIFETIME) for _ in range(2)]
    tokens = [create_token(session, editor, name).secret for name in ("cms", "script")]
    session.commit()

    code, output = run("editors", "deactivate", EMAIL.upper())

    assert code == 0
    assert output == (f"Editor {EMAIL} deactivated: 2 session(s) ended, 2 API token(s) revoked.")
    session.expire_all()
    assert session.scalar(select(Editor.is_active).where(Editor.id == editor.id)) is False
    assert set(session.scalars(select(EditorSession.ended_at))) == {clock()}
    assert set(session.scalars(select(ApiToken.revoked_at))) == {clock()}
    assert all(editor_for_session(session, b, now=clock()) is None for b in browsers)
    with pytest.raises(ValueError, match="has been deactivated"):
        authenticate(session, EMAIL, PASSWORD, now=clock())
    with pytest.raises(ValueError, match="has been deactivated"):
        editor_for_token(session, tokens[0], now=clock())


def test_deactivate_an_unknown_editor_is_a_clear_error(session: Session) -> None:
    code, output = run("editors", "deactivate", "nobody@shortlysts.example.com")
    assert code == 1
    assert "There is no editor nobody@shortlysts.example.com" in output


def test_the_list_shows_who_is_deactivated(session: Session, editor: Editor) -> None:
    run("editors", "deactivate", EMAIL)
    code, output = run("editors", "list", "--format", "json")
    assert code == 0
    [row] = json.loads(output)
    assert row["active"] is False


def test_the_list_shows_the_last_login_to_the_minute_in_utc(
    session: Session, editor: Editor
) -> None:
    editor.last_login_at = datetime(2026, 12, 4, 8, 6, 50, 142452, tzinfo=UTC)
    session.commit()

    code, output = run("editors", "list")

    assert code == 0
    assert "2026-12-04 08:06 UTC" in output
    assert "08:06:50" not in output


def test_a_new_password_signs_the_editor_out_of_every_browser(
    session: Session, editor: Editor, clock: FrozenClock
) -> None:
    browser = start_session(session, editor, now=clock(), lifetime=LIFETIME)
    session.commit()
    new = "a brand new long password"

    result = runner.invoke(
        app, ["editors", "password", EMAIL, "--password-stdin"], input=f"{new}\n"
    )

    assert result.exit_code == 0, result.output
    session.expire_all()
    assert editor_for_session(session, browser, now=clock()) is None
    assert authenticate(session, EMAIL, new, now=clock()) is not None
