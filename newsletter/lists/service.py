"""Creating and finding newsletter lists: every lookup of a list by its slug is here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.lists.schedule import ScheduleError, validate_schedule
from newsletter.models import ClickTracking, NewsletterList, StoryDetail
from newsletter.subscriptions.addresses import normalise_address
from newsletter.text import header_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class ListError(ValueError):
    """A list cannot be created or found as asked; the message says why."""


class ListNotFound(ListError):
    """No list has that slug."""


@dataclass(frozen=True)
class ListSpec:
    slug: str
    name: str
    from_address: str
    from_name: str = ""
    schedule: str = "0 7 * * *"
    timezone: str = "UTC"
    categories: list[str] = field(default_factory=list)
    description: str = ""
    max_posts: int = 25
    language: str = "en"
    story_detail: StoryDetail = StoryDetail.DEK
    click_tracking: ClickTracking = ClickTracking.ANONYMOUS
    track_opens: bool = False
    utm_tags: bool = True


def create_list(session: Session, spec: ListSpec) -> NewsletterList:
    if not SLUG.match(spec.slug):
        raise ListError(
            f"{spec.slug!r} is not a usable slug: lower-case letters, digits and hyphens only"
        )
    if find_list(session, spec.slug) is not None:
        raise ListError(f"a list with the slug {spec.slug!r} exists already")
    name = header_text(spec.name, 200)
    if not name:
        raise ListError("a list needs a name")
    if not 1 <= spec.max_posts <= 100:
        raise ListError("max posts must be between 1 and 100")
    validate_schedule(spec.schedule, spec.timezone)
    nl = NewsletterList(
        slug=spec.slug,
        name=name,
        description=spec.description,
        schedule=spec.schedule,
        timezone=spec.timezone,
        from_name=header_text(spec.from_name or name, 200),
        from_address=normalise_address(spec.from_address),
        categories=[c.strip() for c in spec.categories if c.strip()],
        max_posts=spec.max_posts,
        language=spec.language,
        story_detail=spec.story_detail,
        click_tracking=spec.click_tracking,
        track_opens=spec.track_opens,
        utm_tags=spec.utm_tags,
    )
    session.add(nl)
    session.flush()
    return nl


def find_list(session: Session, slug: str) -> NewsletterList | None:
    """The list at ``slug``, or None. Anything that cannot be a slug is not looked up at all
    (it may be a visitor's typing, and PostgreSQL refuses a NUL in a query)."""
    if not SLUG.fullmatch(slug):
        return None
    return session.scalar(select(NewsletterList).where(NewsletterList.slug == slug))


def get_list(session: Session, slug: str) -> NewsletterList:
    """The list at ``slug``; raises ListNotFound naming the lists there are."""
    nl = find_list(session, slug)
    if nl is None:
        known = ", ".join(session.scalars(select(NewsletterList.slug))) or "none yet"
        raise ListNotFound(f"no list {slug[:64]!r} (lists: {known})")
    return nl


def lists_by_slug(session: Session, slugs: Iterable[str]) -> list[NewsletterList]:
    """The lists a reader chose, in their order, each once; ListError names one that is not."""
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        raise ListError("choose at least one list")
    malformed = [slug for slug in wanted if not SLUG.match(slug)]
    if malformed:
        # Checked before the query: PostgreSQL refuses some characters (NUL) outright.
        raise ListNotFound(f"no such list: {malformed[0][:64]!r}")
    found = {nl.slug: nl for nl in session.scalars(
        select(NewsletterList).where(NewsletterList.slug.in_(wanted))
    )}  # fmt: skip
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise ListNotFound(f"no such list: {', '.join(missing)}")
    return [found[slug] for slug in wanted]


def change_schedule(
    nl: NewsletterList,
    *,
    schedule: str | None = None,
    timezone: str | None = None,
    requires_approval: bool | None = None,
    weekly_day: int | None = None,
) -> None:
    """Change when the list goes out (None keeps a field), or raise ScheduleError saying why.

    The cron expression and the timezone are checked together, before anything changes.
    """
    new_schedule = nl.schedule if schedule is None else " ".join(schedule.split())
    new_timezone = nl.timezone if timezone is None else timezone.strip()
    validate_schedule(new_schedule, new_timezone)
    if weekly_day is not None and not 0 <= weekly_day <= 6:
        raise ScheduleError("the weekly edition's day must be one of Monday to Sunday")
    nl.schedule, nl.timezone = new_schedule, new_timezone
    if requires_approval is not None:
        nl.requires_approval = requires_approval
    if weekly_day is not None:
        nl.weekly_day = weekly_day
