"""``newsletter serve`` and the links in emails: in development with no base URL, links use
the address served, in this command and in every command run after it from the same place
(issue 14: with ``--port 8802`` every link pointed at port 8000)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsletter.cli.serve import links_in_use, served_url
from newsletter.config import Settings
from newsletter.runtime import free_port
from tests.cli_runner import NEWSLETTER, newcomer_env

PRINT_BASE_URL = "from newsletter.config import get_settings; print(get_settings().base_url)"


def development(**values: str) -> Settings:
    return Settings(environment="development", **values)  # type: ignore[arg-type]


def test_with_no_base_url_links_follow_the_served_port() -> None:
    assert links_in_use(development(base_url=""), "127.0.0.1", 8802) == (
        "http://localhost:8802",
        [],
    )


def test_a_base_url_that_is_set_is_kept() -> None:
    config = development(base_url="https://news.example.com")

    assert links_in_use(config, "127.0.0.1", 8802) == ("https://news.example.com", [])


def test_a_local_base_url_on_another_port_is_warned_about() -> None:
    config = development(base_url="http://localhost:8000")

    base_url, warnings = links_in_use(config, "127.0.0.1", 8802)

    assert base_url == "http://localhost:8000"
    assert warnings == [
        "NEWSLETTER_BASE_URL is http://localhost:8000, but this server listens on port 8802: "
        "links in emails will not reach it unless a proxy forwards there."
    ]


def test_an_address_on_all_interfaces_is_shown_as_localhost() -> None:
    assert served_url("0.0.0.0", 8000) == "http://localhost:8000"  # noqa: S104
    assert served_url("192.0.2.7", 8080) == "http://192.0.2.7:8080"


def test_production_without_a_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="NEWSLETTER_BASE_URL is not set"):
        Settings(environment="production", base_url="", secret_key="x" * 40)  # type: ignore[arg-type]


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh directory and the environment of a newcomer: development, no base URL."""
    env = newcomer_env(
        tmp_path,
        NEWSLETTER_ENVIRONMENT="development",
        NEWSLETTER_DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'newsletter.db'}",
    )
    return tmp_path, env


def test_serve_records_its_address_for_the_other_commands(
    checkout: tuple[Path, dict[str, str]],
) -> None:
    directory, env = checkout
    port = free_port()
    server = subprocess.Popen(
        [str(NEWSLETTER), "serve", "--port", str(port)],
        cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        deadline = time.monotonic() + 20
        while not (directory / "var" / "served-url").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()

    assert first.strip() == f"Links in emails and pages start with http://localhost:{port}"
    later = subprocess.run(
        [sys.executable, "-c", PRINT_BASE_URL],
        cwd=directory, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert later.stdout.strip() == f"http://localhost:{port}"
