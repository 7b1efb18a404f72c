"""A misconfigured ``newsletter`` says what is wrong and what to do in a line or two, exits
non-zero and leaves nothing behind (issue 14, item 3: each of these printed 60 to 150 lines
of traceback). The command runs as a person runs it: a process in a directory of its own."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import Delivery, Edition, EditionStatus, NewsletterList
from tests.cli_runner import NEWSLETTER
from tests.factories import edition_with_readers

DEAD_POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:1/x"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def newsletter(directory: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``newsletter ARGS`` run in ``directory`` with the test run's settings and ``settings``
    (NEWSLETTER_ names) on top, and no .env file."""
    env = os.environ | {"NEWSLETTER_ENV_FILE": str(directory / "no-such.env")} | settings
    return subprocess.run(
        [str(NEWSLETTER), *args], cwd=directory, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def everything_in(directory: Path) -> dict[Path, bytes | None]:
    """Every file and folder under ``directory``, with each file's bytes."""
    return {p: (p.read_bytes() if p.is_file() else None) for p in directory.rglob("*")}


def told_in_a_line_or_two(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 3, result.stderr
    return " ".join(result.stderr.split())


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """An empty directory to run commands in, as a fresh checkout would be."""
    directory = tmp_path / "checkout"
    directory.mkdir()
    return directory


@pytest.fixture
def unmigrated(checkout: Path) -> Path:
    """A SQLite file no migration has run on."""
    path = checkout / "newsletter.db"
    sqlite3.connect(path).close()
    return path


def test_a_dead_postgresql_port_is_named_with_what_to_do(checkout: Path) -> None:
    before = everything_in(checkout)

    result = newsletter(checkout, "posts", "list", NEWSLETTER_DATABASE_URL=DEAD_POSTGRESQL)

    told = told_in_a_line_or_two(result)
    assert told.startswith(f"error: cannot connect to the database at {DEAD_POSTGRESQL} (")
    assert "Connection refused" in told
    assert "correct NEWSLETTER_DATABASE_URL" in told
    assert everything_in(checkout) == before


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_are_read_as_postgresql_with_psycopg(checkout: Path, scheme: str) -> None:
    url = f"{scheme}://postgres@127.0.0.1:1/x"

    result = newsletter(checkout, "posts", "list", NEWSLETTER_DATABASE_URL=url)

    assert told_in_a_line_or_two(result).startswith(
        f"error: cannot connect to the database at {url} (connection to server at"
    )


def test_an_unparseable_url_is_refused_with_an_example(checkout: Path) -> None:
    before = everything_in(checkout)

    result = newsletter(checkout, "posts", "list", NEWSLETTER_DATABASE_URL="not a url")

    assert told_in_a_line_or_two(result) == (
        "error: NEWSLETTER_DATABASE_URL 'not a url' is not a database URL: write it like "
        "sqlite:///var/newsletter.db or postgresql://user:password@host/dbname."
    )
    assert everything_in(checkout) == before


def test_an_unparseable_url_is_shown_without_its_password(checkout: Path) -> None:
    url = "postgresql://editor:s3cret@db.example.com:five/newsletter"

    result = newsletter(checkout, "posts", "list", NEWSLETTER_DATABASE_URL=url)

    told = told_in_a_line_or_two(result)
    assert "'postgresql://editor:***@db.example.com:five/newsletter'" in told
    assert "s3cret" not in told


def test_an_unmigrated_sqlite_file_asks_for_db_upgrade(checkout: Path, unmigrated: Path) -> None:
    before = set(everything_in(checkout))

    result = newsletter(
        checkout, "posts", "list", NEWSLETTER_DATABASE_URL=f"sqlite:///{unmigrated}"
    )

    assert told_in_a_line_or_two(result) == (
        f"error: the database at sqlite:///{unmigrated} is not set up for this version "
        "(no such table: posts). Run `newsletter db upgrade` to create or migrate its tables."
    )
    assert set(everything_in(checkout)) == before
    with sqlite3.connect(unmigrated) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_a_sqlite_file_in_a_missing_folder_is_refused_not_created(checkout: Path) -> None:
    result = newsletter(
        checkout, "posts", "list", NEWSLETTER_DATABASE_URL="sqlite:///nonexistent/dir/x.db"
    )

    assert told_in_a_line_or_two(result) == (
        "error: the folder nonexistent/dir of the SQLite database nonexistent/dir/x.db does "
        "not exist. Create it, or correct NEWSLETTER_DATABASE_URL."
    )
    assert everything_in(checkout) == {}


def test_the_default_database_folder_var_is_created(checkout: Path) -> None:
    result = newsletter(
        checkout, "db", "upgrade", NEWSLETTER_DATABASE_URL="sqlite:///var/newsletter.db"
    )

    assert result.returncode == 0, result.stderr
    assert (checkout / "var" / "newsletter.db").is_file()


def test_digest_send_with_redis_down_says_so_and_queues_nothing(
    session: Session,
    daily_list: NewsletterList,
    now: datetime,
    settings: Settings,
    checkout: Path,
) -> None:
    edition = edition_with_readers(
        session, daily_list, ["ann@example.com"], now=now, settings=settings
    )
    status = edition.status

    result = newsletter(
        checkout, "digest", "send", str(edition.id), NEWSLETTER_REDIS_URL=DEAD_REDIS
    )

    told = told_in_a_line_or_two(result)
    assert "Connection refused" in told
    assert "NEWSLETTER_REDIS_URL" in told
    session.expire_all()
    assert session.get_one(Edition, edition.id).status == status == EditionStatus.SCHEDULED
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert everything_in(checkout) == {}


def test_debug_shows_the_traceback(checkout: Path) -> None:
    result = newsletter(
        checkout, "--debug", "posts", "list", NEWSLETTER_DATABASE_URL=DEAD_POSTGRESQL
    )

    assert result.returncode != 0
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "Connection refused" in result.stderr
