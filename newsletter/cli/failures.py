"""What a failed command says: the CLI's one error boundary.

A failure the person at the terminal can act on (a wrong setting, a database that is down or
not migrated, a Redis that does not answer, a refusal of the domain) is told in a line or
two on stderr, what is wrong and what to do, with exit status 1. Anything else is a bug and
keeps its traceback; ``newsletter --debug`` shows the traceback of every failure.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis
from kombu import exceptions as kombu
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from newsletter.cli.common import CommandError
from newsletter.config import ConfigurationError, get_settings
from newsletter.delivery.progress import UnknownEdition
from newsletter.delivery.transports import TransportConfigError
from newsletter.editions.service import EditionError
from newsletter.editors.service import EditorError
from newsletter.handoff import BrokerUnavailable
from newsletter.lists.schedule import ScheduleError
from newsletter.lists.service import ListError
from newsletter.posts.sources import SourceError
from newsletter.rendering.render import RenderError
from newsletter.runtime import RuntimeFailure
from newsletter.subscriptions.addresses import InvalidAddress

# Errors whose message is already written for the person at the terminal.
USER_ERRORS = (
    CommandError, ConfigurationError, UnknownEdition, TransportConfigError, ScheduleError,
    ListError, SourceError, RenderError, RuntimeFailure, InvalidAddress, EditionError,
    EditorError, BrokerUnavailable,
)  # fmt: skip

UPGRADE = "Run `newsletter db upgrade` to create or migrate its tables."


def explain(error: BaseException) -> str | None:
    """What is wrong and what to do, in at most two lines; None for a failure we do not know
    (a bug), whose traceback is worth more than any message."""
    if isinstance(error, USER_ERRORS):
        return str(error)
    if isinstance(error, ValidationError):
        return _settings_problem(error)
    if isinstance(error, DBAPIError):
        return _database_problem(error)
    if isinstance(error, redis.ConnectionError | redis.TimeoutError | kombu.OperationalError):
        # The error names the host and port; the URL may hold a password.
        return f"cannot reach Redis ({error}).\nStart it, or correct NEWSLETTER_REDIS_URL."
    return None


def _settings_problem(error: ValidationError) -> str:
    # pydantic-settings wraps a ConfigurationError raised in a validator as a "Value error".
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["loc"]:
        name = f"NEWSLETTER_{str(first['loc'][0]).upper()}"
        if name not in message:
            message = f"{name}={first['input']!r}: {message}"
    return f"configuration: {message}"


def _database_problem(error: DBAPIError) -> str | None:
    url = make_url(get_settings().database_url)
    shown = url.render_as_string(hide_password=True)
    reason = (str(error.orig).strip().splitlines() or [""])[0]
    if _schema_missing(error.orig):
        return f"the database at {shown} is not set up for this version ({reason}).\n{UPGRADE}"
    if error.statement is not None:  # a query failed once connected: not a setting's doing
        return None
    if url.get_backend_name() != "sqlite":
        reason = reason.removeprefix("connection failed: ")
        todo = (
            f"Create it (createdb {url.database}), or correct NEWSLETTER_DATABASE_URL."
            if f'database "{url.database}" does not exist' in reason
            else "Check that PostgreSQL runs there and lets this user in, or correct "
            "NEWSLETTER_DATABASE_URL."
        )
        return f"cannot connect to the database at {shown} ({reason}).\n{todo}"
    file = Path(url.database or "")
    if not file.parent.is_dir():
        return (
            f"the folder {file.parent} of the SQLite database {file} does not exist.\n"
            "Create it, or correct NEWSLETTER_DATABASE_URL."
        )
    return (
        f"cannot open the SQLite database {file} ({reason}).\n"
        "Check that it is a database file you may write, or correct NEWSLETTER_DATABASE_URL."
    )


def _schema_missing(cause: BaseException | None) -> bool:
    """A table or column the code expects is not there: the migrations have not run."""
    if isinstance(cause, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return True
    return str(cause).startswith(("no such table:", "no such column:"))
