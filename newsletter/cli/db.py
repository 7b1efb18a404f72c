from __future__ import annotations

import typer

from newsletter import migrate
from newsletter.cli.common import console, settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the schema (Alembic) at NEWSLETTER_DATABASE_URL."""
    url = settings().database_url
    migrate.upgrade(url, revision)
    console.print(f"Database at revision [bold]{migrate.current(url)}[/].")
