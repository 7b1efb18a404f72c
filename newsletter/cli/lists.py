from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from newsletter.cli.common import console, print_json
from newsletter.db import session_scope
from newsletter.lists.service import ListSpec, create_list, get_list
from newsletter.models import NewsletterList, StoryDetail, Subscription, SubscriptionStatus

app = typer.Typer(help="Newsletter lists: create, change and list.", no_args_is_help=True)

StoryDetailOption = Annotated[
    StoryDetail,
    typer.Option(
        help="What each story shows where its post has sections: dek (the dek and opening "
        "paragraph), first_section (and the first section) or all_sections."
    ),
]


@app.command()
def create(
    slug: Annotated[
        str, typer.Argument(help="Short name used in commands and List-Id, e.g. daily.")
    ],
    name: Annotated[str, typer.Option(help="Display name, e.g. 'Shortlysts Daily'.")],
    from_address: Annotated[str, typer.Option(help="Sender address, e.g. news@example.com.")],
    from_name: Annotated[str, typer.Option(help="Sender name (default: the list name).")] = "",
    schedule: Annotated[
        str, typer.Option(help="Cron expression in the list's timezone.")
    ] = "0 7 * * *",
    timezone: Annotated[str, typer.Option(help="IANA timezone, e.g. America/New_York.")] = "UTC",
    category: Annotated[
        list[str] | None, typer.Option(help="Post category to carry (repeat; default all).")
    ] = None,
    max_posts: Annotated[int, typer.Option(help="Most stories per edition.")] = 25,
    description: Annotated[str, typer.Option(help="One line shown on signup pages.")] = "",
    story_detail: StoryDetailOption = StoryDetail.DEK,
) -> None:
    """Create a list with its schedule, sender and categories."""
    spec = ListSpec(
        slug=slug, name=name, from_address=from_address, from_name=from_name,
        schedule=schedule, timezone=timezone, categories=category or [],
        max_posts=max_posts, description=description, story_detail=story_detail,
    )  # fmt: skip
    with session_scope() as session:
        nl = create_list(session, spec)
        console.print(f"Created list [bold]{nl.slug}[/] ({nl.name}): {nl.schedule} {nl.timezone}.")


@app.command("set")
def set_(
    slug: Annotated[str, typer.Argument(help="The list to change.")],
    story_detail: StoryDetailOption,
) -> None:
    """Change what a list's digest shows of each story."""
    with session_scope() as session:
        nl = get_list(session, slug)
        nl.story_detail = story_detail
        console.print(f"Stories in [bold]{nl.slug}[/] now show: {story_detail.value}.")


@app.command("list")
def list_(format: Annotated[str, typer.Option(help="table or json")] = "table") -> None:
    """Show every list with its schedule and confirmed readers."""
    with session_scope() as session:
        confirmed = dict(
            session.execute(
                select(Subscription.list_id, func.count())
                .where(Subscription.status == SubscriptionStatus.CONFIRMED)
                .group_by(Subscription.list_id)
            ).all()
        )
        lists = session.scalars(select(NewsletterList).order_by(NewsletterList.slug)).all()
    rows: list[dict[str, Any]] = [
        {"slug": nl.slug, "name": nl.name, "schedule": nl.schedule, "timezone": nl.timezone,
         "from": f"{nl.from_name} <{nl.from_address}>", "categories": nl.categories,
         "story_detail": nl.story_detail.value, "confirmed": int(confirmed.get(nl.id, 0))}
        for nl in lists
    ]  # fmt: skip
    if format == "json":
        print_json(rows)
        return
    table = Table("Slug", "Name", "Schedule", "Timezone", "Categories", "Confirmed", "From")
    for r in rows:
        table.add_row(r["slug"], r["name"], r["schedule"], r["timezone"],
                      ", ".join(r["categories"]) or "all", str(r["confirmed"]),
                      r["from"])  # fmt: skip
    console.print(table)
