"""The attack repros drive the same app as tests/web, through the same fixtures, and
``newsletter serve`` itself where the attack goes through the server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.runtime import free_port
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
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"serve did not start: {log.read_text()}"
            time.sleep(0.1)
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
