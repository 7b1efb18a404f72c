"""The ``newsletter`` command: one Typer group per module."""

from __future__ import annotations

import logging

import typer
from pydantic import ValidationError

from newsletter.cli import db, digest, editors, feeds, inbound, lists, posts, subscribers
from newsletter.cli.common import CommandError, fail
from newsletter.cli.demo import demo
from newsletter.cli.dispatch import dispatch
from newsletter.cli.serve import serve
from newsletter.config import ConfigurationError
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

app = typer.Typer(
    name="newsletter",
    help="Turn a news site's posts into a daily email digest and deliver it, exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(posts.app, name="posts")
app.add_typer(lists.app, name="lists")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(digest.app, name="digest")
app.add_typer(editors.app, name="editors")
app.add_typer(feeds.app, name="feeds")
app.add_typer(inbound.app, name="inbound")
app.command()(dispatch)
app.command()(demo)
app.command()(serve)

# Errors a person can act on: shown as one line, not a traceback.
USER_ERRORS = (
    CommandError, ConfigurationError, UnknownEdition, TransportConfigError, ScheduleError,
    ListError, SourceError, RenderError, RuntimeFailure, InvalidAddress, EditionError,
    EditorError, BrokerUnavailable,
)  # fmt: skip


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except USER_ERRORS as error:
        raise SystemExit(fail(str(error)).exit_code) from None
    except ValidationError as error:
        # pydantic-settings wraps ConfigurationError raised in a validator.
        raise SystemExit(fail(f"configuration: {error.errors()[0]['msg']}").exit_code) from None
