"""Assemble and render an edition: once per list and date, the same however often asked."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from newsletter.analytics.links import (
    StoryLink,
    campaign,
    link_token,
    open_token,
    track,
    with_utm,
)
from newsletter.config import Settings
from newsletter.editions.lifecycle import initial_status
from newsletter.editions.selection import Candidate, select_posts
from newsletter.lists.schedule import edition_cutoff, scheduled_time
from newsletter.models import (
    ClickTracking,
    Edition,
    EditionItem,
    EditionStatus,
    Frequency,
    NewsletterList,
    Post,
)
from newsletter.posts.sections import sections_of
from newsletter.rendering.digest import DigestContext, Story, render_digest
from newsletter.rendering.placeholders import Markers, new_key

# Editions that will never reach readers: their posts are still news for the next one.
UNSENT_FOR_GOOD = (EditionStatus.MISSED, EditionStatus.CANCELLED)


@dataclass(frozen=True)
class BuildResult:
    edition: Edition
    created: bool


def _window_start(
    session: Session,
    nl: NewsletterList,
    frequency: Frequency,
    day: date,
    cutoff: datetime,
    settings: Settings,
) -> datetime:
    """Where the search for ``day``'s posts begins.

    The list's first edition looks back ``first_edition_lookback_hours`` (a week, for a
    weekly one). A later one looks back ``late_post_lookback_hours`` before the previous
    edition's cutoff: a post published before that cutoff but seen only after the edition
    was built (a feed that lagged, an import of older posts) is still news for this one.
    Posts already in an edition are left out by ID (``taken_posts``), not by time. Never
    earlier than the list's first edition looked, so a list's start is not back-filled.
    """
    counted = (
        Edition.list_id == nl.id,
        Edition.frequency == frequency,
        Edition.status.not_in(UNSENT_FOR_GOOD),
    )
    previous = session.scalar(
        select(Edition.cutoff)
        .where(*counted, Edition.edition_date < day)
        .order_by(Edition.edition_date.desc())
        .limit(1)
    )
    if previous is None:
        first = timedelta(days=7) if frequency == Frequency.WEEKLY else None
        return cutoff - (first or timedelta(hours=settings.first_edition_lookback_hours))
    start = previous - timedelta(hours=settings.late_post_lookback_hours)
    floor = session.scalar(select(func.min(Edition.window_start)).where(*counted))
    return start if floor is None else max(start, floor)


def taken_posts(session: Session, nl: NewsletterList, frequency: Frequency) -> set[int]:
    """Posts an edition of the list has taken: carried, or removed by an editor.

    Every edition counts, whatever its date, but those that will never reach readers
    (missed, cancelled): their posts are free for the next one.
    """
    rows = session.scalars(
        select(EditionItem.post_id)
        .join(Edition)
        .where(
            Edition.list_id == nl.id,
            Edition.frequency == frequency,
            Edition.status.not_in(UNSENT_FOR_GOOD),
        )
    )
    return set(rows)


def posts_to_take(
    session: Session,
    nl: NewsletterList,
    frequency: Frequency,
    *,
    window_start: datetime,
    cutoff: datetime,
    limit: int,
) -> list[int]:
    """The posts an edition takes now, newest first: published in ``(window_start, cutoff]``,
    in the list's categories, in none of its editions yet, at most ``limit``."""
    candidates = session.execute(
        select(Post.id, Post.published_at, Post.category).where(
            Post.published_at > window_start, Post.published_at <= cutoff
        )
    )
    return select_posts(
        (Candidate(*row) for row in candidates),
        window_start=window_start,
        cutoff=cutoff,
        categories=nl.categories,
        already_sent=taken_posts(session, nl, frequency),
        limit=limit,
    )


def story_of(post: Post) -> Story:
    return Story(
        title=post.title,
        url=post.url,
        dek=post.dek,
        summary=post.summary,
        category=post.category,
        image_url=post.image_url,
        image_alt=post.image_alt or post.title,
        sections=sections_of(post.body_html),
    )


def archive_url(edition: Edition, settings: Settings) -> str:
    """The edition's public page: the "View in your browser" link of its email."""
    path = f"/archive/{edition.newsletter_list.slug}/{edition.edition_date.isoformat()}"
    if edition.frequency == Frequency.WEEKLY:
        path += "/weekly"
    return settings.base_url.rstrip("/") + path


def ordered_items(edition: Edition) -> list[EditionItem]:
    """Pinned posts first, each group in the editor's order."""
    return sorted(edition.items, key=lambda item: (not item.pinned, item.position))


def _linked_stories(
    edition: Edition, settings: Settings, markers: Markers
) -> tuple[list[Story], str]:
    """The edition's stories with the links the list asks for (UTM tags, tracked links),
    and the open pixel's URL ("" without one). Tracked links need the edition's id."""
    nl = edition.newsletter_list
    items = ordered_items(edition)
    stories = [story_of(item.post) for item in items]
    if nl.utm_tags:
        source, name = settings.utm_source or nl.slug, campaign(nl.slug, edition.edition_date)
        stories = [replace(s, url=with_utm(s.url, source=source, campaign=name)) for s in stories]
    edition.click_tracking, edition.track_opens = nl.click_tracking, nl.track_opens
    if nl.click_tracking == ClickTracking.OFF and not nl.track_opens:
        return stories, ""
    if edition.id is None:
        session = object_session(edition)
        assert session is not None, "a tracked edition is rendered in a session"
        session.flush()
    base = settings.base_url.rstrip("/")
    pixel = ""
    if nl.track_opens:
        pixel = f"{base}/o/{open_token(settings.secret_key, edition.id)}/{markers.reader}.gif"
    if nl.click_tracking == ClickTracking.OFF:
        return stories, pixel
    pairs = list(zip(items, stories, strict=True))
    numbers = track(edition, [StoryLink(item.post_id, story.url) for item, story in pairs])

    def tracked(url: str) -> str:
        token = link_token(settings.secret_key, edition.id, numbers[url])
        return f"{base}/r/{token}/{markers.reader}"

    return [replace(story, url=tracked(story.url)) for story in stories], pixel


def render_edition(edition: Edition, settings: Settings) -> None:
    """(Re)render an edition's stored email from its items and the editor's touches."""
    nl = edition.newsletter_list
    markers = Markers(new_key())
    stories, pixel = _linked_stories(edition, settings, markers)
    context = DigestContext(
        list_name=nl.name if edition.frequency == Frequency.DAILY else f"{nl.name}: the week",
        language=nl.language,
        edition_date=edition.edition_date,
        site_name=settings.site_name,
        site_url=settings.site_url,
        postal_address=settings.postal_address,
        # Column defaults apply at INSERT: a new edition's touches are still None here.
        intro=edition.intro or "",
        subject_override=edition.subject_override or "",
        preheader_override=edition.preheader_override or "",
        archive_url=archive_url(edition, settings),
        markers=markers,
        story_detail=nl.story_detail,
        open_pixel_url=pixel,
    )
    started = time.perf_counter()
    email, _ = render_digest(context, stories, budget_bytes=settings.html_budget_bytes)
    edition.render_ms = round((time.perf_counter() - started) * 1000)
    edition.subject, edition.preheader = email.subject, email.preheader
    edition.html, edition.text = email.html, email.text
    edition.marker_key = context.markers.key


def build_edition(
    session: Session,
    nl: NewsletterList,
    day: date,
    *,
    now: datetime,
    settings: Settings,
    frequency: Frequency = Frequency.DAILY,
) -> BuildResult:
    """The daily (or weekly) edition of ``nl`` for ``day``, a date in the list's timezone.

    An existing edition is returned untouched. Otherwise it takes the posts up to its cutoff
    that no edition of the list has taken, late ones included (see ``_window_start``); a
    weekly edition takes the week's posts, whether or not the daily editions carried them.
    With none, the edition is stored as skipped with the reason, so the dispatcher does not
    try again all day; posts that come later for its window go into the next edition.
    """
    same_edition = (
        Edition.list_id == nl.id,
        Edition.edition_date == day,
        Edition.frequency == frequency,
    )
    existing = session.scalar(select(Edition).where(*same_edition))
    if existing is not None:
        return BuildResult(existing, created=False)

    cutoff = edition_cutoff(nl.schedule, nl.timezone, day, now)
    window_start = _window_start(session, nl, frequency, day, cutoff, settings)
    post_ids = posts_to_take(
        session, nl, frequency, window_start=window_start, cutoff=cutoff, limit=nl.max_posts
    )
    edition = Edition(
        newsletter_list=nl,
        edition_date=day,
        frequency=frequency,
        window_start=window_start,
        cutoff=cutoff,
        status=initial_status(has_posts=bool(post_ids), requires_approval=nl.requires_approval),
        scheduled_at=scheduled_time(nl.schedule, nl.timezone, day) or now,
    )
    if not post_ids:
        edition.skip_reason = (
            f"no new posts published between {window_start:%Y-%m-%d %H:%M} and "
            f"{cutoff:%Y-%m-%d %H:%M} UTC"
            + (f" in categories {', '.join(nl.categories)}" if nl.categories else "")
        )
    else:
        posts = {p.id: p for p in session.scalars(select(Post).where(Post.id.in_(post_ids)))}
        edition.items = [
            EditionItem(post=posts[pid], position=i) for i, pid in enumerate(post_ids, start=1)
        ]
    try:
        with session.begin_nested():
            session.add(edition)
            if post_ids:
                # In the savepoint: a tracked edition's links are its rows, under its id.
                render_edition(edition, settings)
    except IntegrityError:
        # Another builder won the race for (list, date): theirs is the edition.
        winner = session.scalar(select(Edition).where(*same_edition))
        assert winner is not None
        return BuildResult(winner, created=False)
    return BuildResult(edition, created=True)
