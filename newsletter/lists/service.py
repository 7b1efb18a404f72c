"""Creating and finding newsletter lists."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.digest.schedule import ScheduleError, validate_schedule
from newsletter.models import NewsletterList
from newsletter.rendering.render import header_text
from newsletter.subscriptions.addresses import normalise_address

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class ListError(ValueError):
    """A list cannot be created or found as asked; the message says why."""


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


def create_list(session: Session, spec: ListSpec) -> NewsletterList:
    if not SLUG.match(spec.slug):
        raise ListError(
            f"{spec.slug!r} is not a usable slug: lower-case letters, digits and hyphens only"
        )
    if get_list(session, spec.slug, missing_ok=True) is not None:
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
    )
    session.add(nl)
    session.flush()
    return nl


def get_list(session: Session, slug: str, *, missing_ok: bool = False) -> NewsletterList | None:
    nl = session.scalar(select(NewsletterList).where(NewsletterList.slug == slug))
    if nl is None and not missing_ok:
        known = ", ".join(session.scalars(select(NewsletterList.slug))) or "none yet"
        raise ListError(f"no list {slug!r} (lists: {known})")
    return nl


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
