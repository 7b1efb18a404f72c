"""Schema migrations (Alembic), driven from code so no alembic.ini is needed."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from newsletter.resources import _PACKAGE


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_PACKAGE / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema at ``database_url`` to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from newsletter.db import get_engine

    with get_engine(database_url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
