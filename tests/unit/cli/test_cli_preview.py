"""``newsletter digest preview``: the edition as a sample reader sees it, in a file."""

from __future__ import annotations

import webbrowser
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import Edition, NewsletterList
from tests.cli_runner import run
from tests.factories import edition_with_readers


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    readers = ["ann@example.com"]
    return edition_with_readers(session, daily_list, readers, now=now, settings=settings)


def test_open_with_no_browser_says_where_the_preview_is(
    edition: Edition, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webbrowser, "open", lambda url: False)  # a machine with no browser
    preview = tmp_path / "preview.html"

    code, output = run("digest", "preview", str(edition.id), "--output", str(preview), "--open")

    assert code == 0
    assert preview.is_file()
    assert output.endswith(f"No browser could be opened here; open {preview} in one.")


def test_open_hands_the_preview_to_the_browser(
    edition: Edition, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    preview = tmp_path / "preview.html"

    code, output = run("digest", "preview", str(edition.id), "--output", str(preview), "--open")

    assert code == 0
    assert opened == [preview.as_uri()]
    assert "No browser" not in output
