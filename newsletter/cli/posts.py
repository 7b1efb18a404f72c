from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select

from newsletter.cli.common import console, errors, print_json, settings, utcnow
from newsletter.db import session_scope
from newsletter.lists.schedule import edition_cutoff, local_date
from newsletter.models import NewsletterList, Post
from newsletter.posts.ingest import ImportReport, import_posts, upsert_posts
from newsletter.posts.sample import sample_posts

app = typer.Typer(help="Posts from the site: import and list.", no_args_is_help=True)


def print_import_report(report: ImportReport) -> None:
    for warning in report.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    for error in report.errors:
        errors.print(f"[red]skipped[/] {error}")
    console.print(
        f"Imported {report.imported} posts: {report.created} new, {report.updated} updated, "
        f"{report.unchanged} unchanged"
        + (f"; {len(report.errors)} skipped" if report.errors else "")
    )


@app.command("import")
def import_(
    source: Annotated[
        str | None,
        typer.Argument(help="RSS/Atom feed, JSON file or article .txt: a path or URL."),
    ] = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="The bundled Shortlysts sample feed instead, dated into today's editions so "
            "the next `digest build` has stories. Create your list first.",
        ),
    ] = False,
) -> None:
    """Import posts: new ones are added, edited ones updated (matched by GUID, else URL).

    Items that fail validation are listed and skipped; the rest are imported.
    """
    if (source is None) == (not sample):
        raise typer.BadParameter("give a feed, file or URL to import, or --sample (not both)")
    config = settings()
    if sample:
        _import_sample()
        return
    assert source is not None
    with session_scope() as session:
        report = import_posts(
            session, source, site_url=config.site_url, now=utcnow(),
            max_bytes=config.max_import_bytes, deadline=config.feed_timeout,
            allow_private=config.allow_private_feeds,
        )  # fmt: skip
    print_import_report(report)
    if report.errors and not report.imported:
        raise typer.Exit(code=1)


def _import_sample() -> None:
    now = utcnow()
    with session_scope() as session:
        # Just before the earliest of today's cutoffs, so every list's next edition has them.
        cutoffs = [
            edition_cutoff(nl.schedule, nl.timezone, local_date(nl.timezone, now), now)
            for nl in session.scalars(select(NewsletterList))
        ]
        report = upsert_posts(session, sample_posts(before=min([now, *cutoffs]), now=now))
    print_import_report(report)
    if not cutoffs:
        console.print(
            "[yellow]No list yet:[/] the sample is dated just before now. A list created later "
            "whose send time today has passed will not see it; create the list, then import."
        )


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Posts per page.")] = 20,
    page: Annotated[int, typer.Option(min=1, help="Page number, newest first.")] = 1,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    format: Annotated[str, typer.Option(help="table or json")] = "table",
) -> None:
    """List posts, newest first."""
    with session_scope() as session:
        query = select(Post)
        if category:
            query = query.where(func.lower(Post.category) == category.lower())
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        posts = session.scalars(
            query.order_by(Post.published_at.desc(), Post.id.desc())
            .limit(limit).offset((page - 1) * limit)
        ).all()  # fmt: skip
    if format == "json":
        print_json([
            {"id": p.id, "guid": p.guid, "title": p.title, "dek": p.dek, "url": p.url,
             "category": p.category, "published_at": p.published_at.isoformat()}
            for p in posts
        ])  # fmt: skip
        return
    table = Table(
        "ID", "Published (UTC)", "Category", "Title", title=f"Posts (page {page}, {total} in all)"
    )
    for p in posts:
        table.add_row(str(p.id), f"{p.published_at:%Y-%m-%d %H:%M}", p.category, p.title)
    console.print(table)
