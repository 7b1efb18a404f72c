from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from newsletter.cli.common import CommandError, console, print_json
from newsletter.db import session_scope
from newsletter.lists.service import ListSpec, create_list, get_list
from newsletter.lists.tracking import (
    CLICK_TRACKING_HELP,
    CLICK_TRACKING_MEANS,
    TRACK_OPENS_MEANS,
    UTM_TAGS_MEANS,
    change_tracking,
    tracking_summary,
)
from newsletter.models import (
    ClickTracking,
    NewsletterList,
    StoryDetail,
    Subscription,
    SubscriptionStatus,
)

app = typer.Typer(help="Newsletter lists: create, change and list.", no_args_is_help=True)

STORY_DETAIL_HELP = (
    "What each story shows where its post has sections: dek (the dek and opening paragraph), "
    "first_section (and the first section) or all_sections."
)
CLICKS_HELP = CLICK_TRACKING_HELP + "."
OPENS_HELP = f"Count opens: {TRACK_OPENS_MEANS}."
UTM_HELP = f"Tag story links: {UTM_TAGS_MEANS}."
INDIVIDUAL_NOTE = (
    "Readers who signed up before now were not told at signup that their clicks are stored: "
    "tell them (in the next edition, say) before relying on it."
)
OPENS_FLAG, UTM_FLAG = "--track-opens/--no-track-opens", "--utm-tags/--no-utm-tags"


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
    story_detail: Annotated[StoryDetail, typer.Option(help=STORY_DETAIL_HELP)] = StoryDetail.DEK,
    click_tracking: Annotated[
        ClickTracking, typer.Option(help=CLICKS_HELP)
    ] = ClickTracking.ANONYMOUS,
    track_opens: Annotated[bool, typer.Option(OPENS_FLAG, help=OPENS_HELP)] = False,
    utm_tags: Annotated[bool, typer.Option(UTM_FLAG, help=UTM_HELP)] = True,
) -> None:
    """Create a list with its schedule, sender, categories and tracking."""
    spec = ListSpec(
        slug=slug, name=name, from_address=from_address, from_name=from_name,
        schedule=schedule, timezone=timezone, categories=category or [],
        max_posts=max_posts, description=description, story_detail=story_detail,
        click_tracking=click_tracking, track_opens=track_opens, utm_tags=utm_tags,
    )  # fmt: skip
    with session_scope() as session:
        nl = create_list(session, spec)
        console.print(f"Created list [bold]{nl.slug}[/] ({nl.name}): {nl.schedule} {nl.timezone}.")


@app.command("set")
def set_(
    slug: Annotated[str, typer.Argument(help="The list to change.")],
    story_detail: Annotated[StoryDetail | None, typer.Option(help=STORY_DETAIL_HELP)] = None,
    click_tracking: Annotated[ClickTracking | None, typer.Option(help=CLICKS_HELP)] = None,
    track_opens: Annotated[bool | None, typer.Option(OPENS_FLAG, help=OPENS_HELP)] = None,
    utm_tags: Annotated[bool | None, typer.Option(UTM_FLAG, help=UTM_HELP)] = None,
) -> None:
    """Change what a list's digest shows of each story, and what its emails track."""
    if (story_detail, click_tracking, track_opens, utm_tags) == (None, None, None, None):
        raise CommandError(
            "say what to change: --story-detail, --click-tracking, --track-opens or "
            "--no-track-opens, --utm-tags or --no-utm-tags"
        )
    with session_scope() as session:
        nl = get_list(session, slug)
        was = nl.click_tracking
        change_tracking(nl, click_tracking=click_tracking, track_opens=track_opens,
                        utm_tags=utm_tags)  # fmt: skip
        if story_detail is not None:
            nl.story_detail = story_detail
            console.print(f"Stories in [bold]{nl.slug}[/] now show: {story_detail.value}.")
        if click_tracking is not None:
            if click_tracking == ClickTracking.INDIVIDUAL and was != click_tracking:
                console.print(INDIVIDUAL_NOTE)
            console.print(
                f"Clicks in [bold]{nl.slug}[/]: {click_tracking.value} "
                f"({CLICK_TRACKING_MEANS[click_tracking]})."
            )
        if track_opens is not None:
            counted = "counted" if track_opens else "not counted"
            console.print(f"Opens in [bold]{nl.slug}[/]: {counted}.")
        if utm_tags is not None:
            console.print(f"UTM tags in [bold]{nl.slug}[/]: {'on' if utm_tags else 'off'}.")


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
         "story_detail": nl.story_detail.value, "click_tracking": nl.click_tracking.value,
         "track_opens": nl.track_opens, "utm_tags": nl.utm_tags,
         "tracking": tracking_summary(nl), "confirmed": int(confirmed.get(nl.id, 0))}
        for nl in lists
    ]  # fmt: skip
    if format == "json":
        print_json(rows)
        return
    table = Table(
        "Slug", "Name", "Schedule", "Timezone", "Categories", "Confirmed", "From", "Tracking"
    )
    for r in rows:
        table.add_row(r["slug"], r["name"], r["schedule"], r["timezone"],
                      ", ".join(r["categories"]) or "all", str(r["confirmed"]),
                      r["from"], r["tracking"])  # fmt: skip
    console.print(table)
