"""Upgrading a database that holds data keeps the data, on SQLite too (which alters a table
by copying it: with foreign keys on, the copy's drop would cascade into child rows)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from newsletter import migrate
from newsletter.db import get_engine

LIST = (
    "INSERT INTO lists (slug, name, description, schedule, timezone, from_name, from_address,"
    " categories, max_posts, language, created_at) VALUES ('d', 'D', '', '0 7 * * *', 'UTC',"
    " 'F', 'f@example.com', '[]', 25, 'en', '2025-01-01')"
)
EDITION = (
    "INSERT INTO editions (list_id, edition_date, window_start, cutoff, status, skip_reason,"
    " subject, preheader, html, text, render_ms, created_at) VALUES (1, '2025-01-01',"
    " '2025-01-01', '2025-01-01', 'built', '', 's', 'p', 'h', 't', 1, '2025-01-01')"
)


def test_upgrade_from_the_first_schema_keeps_lists_and_editions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0001")
    with get_engine(url).begin() as connection:
        connection.execute(text(LIST))
        connection.execute(text(EDITION))
    migrate.upgrade(url)
    with get_engine(url).begin() as connection:
        rows = connection.execute(text("SELECT status, intro FROM editions")).all()
    assert rows == [("scheduled", "")], "a built edition is a scheduled one now"


def test_downgrade_to_the_previous_schema_keeps_editions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0001")
    with get_engine(url).begin() as connection:
        connection.execute(text(LIST))
        connection.execute(text(EDITION))
    migrate.upgrade(url)
    command.downgrade(migrate.alembic_config(url), "0003")
    with get_engine(url).begin() as connection:
        assert connection.execute(text("SELECT status FROM editions")).all() == [("built",)]
