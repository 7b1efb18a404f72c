"""Fixtures on real parts: a migrated database (SQLite, or PostgreSQL when
NEWSLETTER_TEST_DATABASE_URL is set), Redis (NEWSLETTER_TEST_REDIS_URL, else an embedded
one), an aiosmtpd server and a Celery worker process."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings, get_settings
from newsletter.db import Base, get_engine, session_factory
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import NewsletterList
from tests.moments import TEST_NOW

pytest_plugins = ["tests.services", "tests.sent_messages"]

FIXTURES = Path(__file__).parent / "fixtures"
SEED_POST = FIXTURES / "seed-post.txt"  # a copy of ../shared/fixtures/seed-post.txt


def _database_url(tmp: Path) -> str:
    return os.environ.get("NEWSLETTER_TEST_DATABASE_URL") or f"sqlite:///{tmp / 'test.db'}"


@pytest.fixture(scope="session", autouse=True)
def test_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Settings for the whole run, set in the environment so worker processes share them."""
    tmp = tmp_path_factory.mktemp("newsletter")
    env = {
        "NEWSLETTER_ENVIRONMENT": "test",
        "NEWSLETTER_SECRET_KEY": "test-secret-key-not-for-production",
        "NEWSLETTER_DATABASE_URL": _database_url(tmp),
        "NEWSLETTER_BASE_URL": "https://news.example.com",
        "NEWSLETTER_OUTBOX_DIR": str(tmp / "outbox"),
        "NEWSLETTER_CELERY_QUEUE": f"newsletter-test-{uuid.uuid4().hex[:8]}",
        "NEWSLETTER_ENV_FILE": str(tmp / "no-such.env"),
        # The sample feed spans a day; look back far enough to take all of it.
        "NEWSLETTER_FIRST_EDITION_LOOKBACK_HOURS": "48",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def database_url(test_environment: dict[str, str]) -> Iterator[str]:
    from newsletter import migrate

    url = test_environment["NEWSLETTER_DATABASE_URL"]
    engine = get_engine(url)
    with engine.begin() as connection:
        # A fresh schema every run, built by the migrations themselves.
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(url)
    yield url
    engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session on the migrated database; every table is emptied afterwards."""
    db = session_factory(database_url)()
    try:
        yield db
    finally:
        db.rollback()
        db.close()
        with get_engine(database_url).begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def now() -> datetime:
    """Just after the 07:00 UTC edition that follows the sample feed's posts."""
    return TEST_NOW


@pytest.fixture
def clock(now: datetime) -> FrozenClock:
    """The one clock of the app under test, standing at ``now`` until a test moves it."""
    return FrozenClock(now)


@pytest.fixture
def daily_list(session: Session) -> NewsletterList:
    nl = create_list(
        session,
        ListSpec(
            slug="daily",
            name="Shortlysts Daily",
            from_address="digest@shortlysts.example.com",
            from_name="Shortlysts",
            schedule="0 7 * * *",
            timezone="UTC",
        ),
    )
    session.commit()
    return nl


@pytest.fixture
def seed_post_text() -> str:
    return SEED_POST.read_text(encoding="utf-8")
