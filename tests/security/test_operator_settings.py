"""Settings that would hurt readers in production are refused or called out, and a notice
is never lost to a missing folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from newsletter.clock import FrozenClock
from newsletter.config import PLACEHOLDER_SECRET, Settings
from newsletter.handoff import InProcessHandoff
from newsletter.models import NewsletterList
from newsletter.runtime import free_port
from tests.web.conftest import AppFactory


def test_production_refuses_an_http_base_url() -> None:
    with pytest.raises(ValidationError, match="NEWSLETTER_BASE_URL must be an https://"):
        Settings(environment="production", secret_key="x" * 48, base_url="http://news.example.com")


def test_serve_with_the_placeholder_secret_says_so_at_start(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "NEWSLETTER_ENVIRONMENT": "development",
        "NEWSLETTER_SECRET_KEY": PLACEHOLDER_SECRET,
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        first = server.stderr.readline()
    finally:
        server.terminate()
        server.communicate(timeout=10)

    assert first.startswith("WARNING: NEWSLETTER_SECRET_KEY is the placeholder")


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """An outbox folder whose parents do not exist yet, as in a fresh clone's var/."""
    return tmp_path / "var" / "mail" / "outbox"


@pytest.fixture
def handoff(  # type: ignore[override]
    settings: Settings, clock: FrozenClock, outbox: Path
) -> InProcessHandoff:
    return InProcessHandoff(
        settings.model_copy(update={"smtp_url": "", "outbox_dir": outbox}), clock
    )


def test_a_confirmation_reaches_an_outbox_folder_that_did_not_exist(
    make_client: AppFactory, lists: list[NewsletterList], outbox: Path
) -> None:
    client: TestClient = make_client()

    response = client.post(
        "/api/v1/subscriptions", json={"email": "ada@example.com", "lists": ["daily"]}
    )

    assert response.status_code == 202
    deadline = time.monotonic() + 20
    while not list((outbox / "new").glob("*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [mail] = list((outbox / "new").glob("*"))
    assert b"To: ada@example.com" in mail.read_bytes()
