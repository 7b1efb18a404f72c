"""`newsletter worker` and `newsletter beat` before they become Celery: what they refuse, and
what they print (tests/integration/test_worker_commands.py runs them for real)."""

from __future__ import annotations

import pytest

from newsletter.config import get_settings
from newsletter.text import without_password
from tests.cli_runner import run


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_without_a_broker_it_says_which_setting_to_set(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_REDIS_URL", "")
    get_settings.cache_clear()
    try:
        code, output = run(command)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert code == 1
    assert f"NEWSLETTER_REDIS_URL is not set: a {command} needs the Redis" in output
    assert "NEWSLETTER_REDIS_URL=redis://127.0.0.1:6379/0" in output


def test_a_broker_or_database_password_is_never_printed() -> None:
    assert without_password("redis://:s3cret@redis.internal:6379/0") == (
        "redis://:***@redis.internal:6379/0"
    )
    assert without_password("postgresql+psycopg://news:s3cret@db/newsletter") == (
        "postgresql+psycopg://news:***@db/newsletter"
    )
    assert without_password("sqlite:///var/newsletter.db") == "sqlite:///var/newsletter.db"
