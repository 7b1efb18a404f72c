"""Declarative base, engine and the unit-of-work scope.

Domain functions take a ``Session`` and never commit; whoever owns the unit of work (a CLI
command, a Celery task, a web request) opens it with :func:`session_scope`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import URL, CursorResult, Engine, MetaData, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from newsletter.config import ConfigurationError
from newsletter.text import without_password

# Named constraints, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI read while a worker writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# The names people write for PostgreSQL, as the driver we ship (psycopg 3): SQLAlchemy knows
# no "postgres" dialect, and before 2.1 read "postgresql" as psycopg2, which we do not install.
_POSTGRESQL_ALIASES = {"postgres", "postgresql"}
_EXAMPLES = "sqlite:///var/newsletter.db or postgresql://user:password@host/dbname"

# The default database lives in var/ under the working directory, which the project creates
# as it needs it (the embedded Redis, previews, the outbox). Any other missing folder is a
# mistyped URL: connecting fails and says so, rather than creating folders where it points.
_OWN_FOLDER = Path("var")


def engine_url(url: str) -> URL:
    """``url`` as the engine opens it; a URL we cannot use is a ``ConfigurationError``."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            f"NEWSLETTER_DATABASE_URL {without_password(url)!r} is not a database URL: "
            f"write it like {_EXAMPLES}."
        ) from None
    if parsed.drivername in _POSTGRESQL_ALIASES:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"NEWSLETTER_DATABASE_URL {parsed.render_as_string()} names {parsed.drivername}, "
            f"but only SQLite and PostgreSQL are supported: write it like {_EXAMPLES}."
        )
    return parsed


def _create_own_folder(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder, own = Path(database).parent.resolve(), _OWN_FOLDER.resolve()
    if folder == own or own in folder.parents:
        folder.mkdir(parents=True, exist_ok=True)


_SQLITE: dict[str, Any] = {"connect_args": {"timeout": 30}}
# A client that stops inside a transaction (a worker frozen or cut off mid-claim) would hold
# its row locks until the server notices it is gone, hours later by TCP keepalive. Workers
# pass such rows over (SKIP LOCKED); the timeout gives them back within five minutes.
_POSTGRESQL: dict[str, Any] = {
    "pool_pre_ping": True,
    "connect_args": {"options": "-c idle_in_transaction_session_timeout=300000"},
}


def make_engine(url: str) -> Engine:
    parsed = engine_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        _create_own_folder(parsed.database)
    try:
        engine = create_engine(parsed, **(_SQLITE if sqlite else _POSTGRESQL))
    except ImportError as error:  # postgresql+psycopg2://, sqlite+pysqlcipher://: no such driver
        raise ConfigurationError(
            f"NEWSLETTER_DATABASE_URL {parsed.render_as_string()} needs a driver that is not "
            f"installed ({error}): write it like {_EXAMPLES}."
        ) from None
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    return make_engine(url)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    if url is None:
        from newsletter.config import get_settings

        url = get_settings().database_url
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def affected_rows(result: Result[Any]) -> int:
    """Rows an INSERT, UPDATE or DELETE touched (DML results are always cursor results)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)
