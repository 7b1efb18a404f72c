"""The ``newsletter`` command: one Typer group per module."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.markup import escape

from newsletter.cli import (
    analytics,
    db,
    digest,
    editors,
    failures,
    feeds,
    inbound,
    lists,
    posts,
    subscribers,
)
from newsletter.cli.common import fail
from newsletter.cli.demo import demo
from newsletter.cli.dispatch import dispatch
from newsletter.cli.failures import USER_ERRORS
from newsletter.cli.serve import serve
from newsletter.cli.worker import PASS_THROUGH, beat, worker

__all__ = ["USER_ERRORS", "app", "main"]

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
app.add_typer(analytics.app, name="analytics")
app.command()(dispatch)
app.command()(demo)
app.command()(serve)
app.command(context_settings=PASS_THROUGH)(worker)
app.command(context_settings=PASS_THROUGH)(beat)

_debug = False


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, not only its message.")
    ] = False,
) -> None:
    global _debug
    _debug = debug


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except Exception as error:
        message = None if _debug else failures.explain(error)
        if message is None:
            raise
        raise SystemExit(fail(escape(message)).exit_code) from None
