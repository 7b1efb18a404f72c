"""The attack repros drive the same app as tests/web, through the same fixtures, and
``newsletter serve`` itself where the attack goes through the server."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.runtime import free_port
from tests.services import web_process
from tests.web.conftest import (  # noqa: F401  (fixtures, found by pytest by name)
    admin,
    api,
    api_token,
    client,
    editor,
    handoff,
    lists,
    make_client,
    notifier,
)

ROOT = Path(__file__).resolve().parents[2]
TRUSTED_PROXY = "10.0.0.1"


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``newsletter serve --proxy-headers`` in its own process, trusting a proxy that is not
    localhost, so the test's own requests come from an untrusted peer."""
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_REDIS_URL": "",
        "NEWSLETTER_SMTP_URL": "",
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_TRUSTED_PROXIES": TRUSTED_PROXY,
    }
    port = free_port()
    log = tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--proxy-headers",
    ]  # fmt: skip
    with web_process(command, port=port, env=env, log=log, cwd=ROOT) as url:
        yield url, log
