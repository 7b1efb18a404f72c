"""An edition's report, and a list's trend over its recent editions.

Plain functions over a session, each number from one grouped query, for the admin, the
editor API and the CSV export. What came back by mail (delivered, bounced, complained,
unsubscribed) is counted by :mod:`newsletter.inbound.stats`, which sits above this package:
its counter is handed in as ``outcomes_of``, so both reports and the edition page agree.

- **Click-through rate** is unique human clickers over readers the edition was delivered
  to. Clicks a machine made (link scanners, prefetchers) are counted apart and never in it.
- **Opens** exist only for an edition that carried an open pixel; they are an estimate
  (images blocked, Apple Mail Privacy Protection loading every image for the reader).
- **Growth** between two editions of a list is the consent log's confirmations and imports
  onto the list, less its unsubscribes (complaints included), from just after the previous
  edition started sending until this one did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from newsletter.models import (
    ClickHour,
    ConsentAction,
    ConsentEvent,
    Edition,
    EditionEngagement,
    NewsletterList,
    Post,
    TrackedLink,
)

CHART_HOURS = 48
TREND_EDITIONS = 30
JOINED = (ConsentAction.CONFIRM, ConsentAction.IMPORT)


class MailOutcomes(Protocol):
    """What became of an edition's messages (``newsletter.inbound.stats.EditionOutcomes``)."""

    @property
    def delivered(self) -> int: ...
    @property
    def bounced_hard(self) -> int: ...
    @property
    def bounced_soft(self) -> int: ...
    @property
    def complaints(self) -> int: ...
    @property
    def unsubscribed_link(self) -> int: ...
    @property
    def unsubscribed_one_click(self) -> int: ...
    @property
    def unsubscribed_email(self) -> int: ...


OutcomesOf = Callable[[Session, Sequence[int]], Mapping[int, MailOutcomes]]


def _share(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` (0.0-1.0); None when there is no whole to take a share of."""
    return part / whole if whole else None


class _Rates:
    """Rates over what was delivered, the same in a report and in a trend's row."""

    delivered: int
    unique_clickers: int
    complaints: int

    if TYPE_CHECKING:  # a field of a trend's row, a sum in a report

        @property
        def bounced(self) -> int: ...

    @property
    def click_through_rate(self) -> float | None:
        return _share(self.unique_clickers, self.delivered)

    @property
    def bounce_rate(self) -> float | None:
        return _share(self.bounced, self.delivered)

    @property
    def complaint_rate(self) -> float | None:
        return _share(self.complaints, self.delivered)


@dataclass(frozen=True)
class StoryClicks:
    """One story's link in the edition and the clicks it had."""

    number: int
    position: int  # where the story stands in the email; 0: an editor removed it
    title: str  # the post's title, or its URL when the post is gone
    url: str
    human_clicks: int
    machine_clicks: int


@dataclass(frozen=True)
class HourClicks:
    hour: int  # 0: the first hour after the edition started sending
    human: int
    machine: int


@dataclass(frozen=True)
class Opens:
    """Opens of an edition that carried an open pixel: an estimate, never a count of people."""

    human: int
    machine: int  # Apple Mail Privacy Protection and other proxies loading every image
    unique_openers: int


@dataclass(frozen=True)
class EditionReport(_Rates):
    edition_id: int
    list_slug: str
    list_name: str
    list_timezone: str
    edition_date: date
    frequency: str
    subject: str
    status: str
    send_started_at: datetime | None
    click_tracking: str  # off, anonymous, individual
    delivered: int
    bounced_hard: int
    bounced_soft: int
    complaints: int
    unsubscribed_link: int
    unsubscribed_one_click: int
    unsubscribed_email: int
    unique_clickers: int
    machine_clicks: int
    opens: Opens | None  # None: the edition carried no open pixel
    stories: tuple[StoryClicks, ...]  # most human clicks first
    hours: tuple[HourClicks, ...]  # the first CHART_HOURS hours, every one present

    @property
    def bounced(self) -> int:
        return self.bounced_hard + self.bounced_soft

    @property
    def unsubscribed(self) -> int:
        return self.unsubscribed_link + self.unsubscribed_one_click + self.unsubscribed_email

    @property
    def human_clicks(self) -> int:
        return sum(story.human_clicks for story in self.stories)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _share(self.unsubscribed, self.delivered)

    @property
    def open_rate(self) -> float | None:
        return None if self.opens is None else _share(self.opens.unique_openers, self.delivered)


def edition_report(
    session: Session, edition_id: int, *, outcomes_of: OutcomesOf
) -> EditionReport | None:
    """The report of one edition; None if there is no such edition."""
    found = session.execute(
        select(Edition, NewsletterList.slug, NewsletterList.name, NewsletterList.timezone)
        .join(NewsletterList, NewsletterList.id == Edition.list_id)
        .where(Edition.id == edition_id)
    ).first()
    if found is None:
        return None
    edition, slug, name, timezone = found
    outcomes = outcomes_of(session, [edition_id])[edition_id]
    engagement = session.get(EditionEngagement, edition_id)
    stories = _stories(session, edition_id)
    opens = None
    if edition.track_opens:
        opens = Opens(
            engagement.human_opens if engagement else 0,
            engagement.machine_opens if engagement else 0,
            engagement.unique_openers if engagement else 0,
        )
    return EditionReport(
        edition_id=edition.id, list_slug=slug, list_name=name, list_timezone=timezone,
        edition_date=edition.edition_date, frequency=edition.frequency.value,
        subject=edition.subject, status=edition.status.value,
        send_started_at=edition.send_started_at, click_tracking=edition.click_tracking.value,
        delivered=outcomes.delivered, bounced_hard=outcomes.bounced_hard,
        bounced_soft=outcomes.bounced_soft, complaints=outcomes.complaints,
        unsubscribed_link=outcomes.unsubscribed_link,
        unsubscribed_one_click=outcomes.unsubscribed_one_click,
        unsubscribed_email=outcomes.unsubscribed_email,
        unique_clickers=engagement.unique_clickers if engagement else 0,
        machine_clicks=_machine_clicks(session, edition_id), opens=opens,
        stories=stories, hours=click_hours(session, edition_id),
    )  # fmt: skip


def _stories(session: Session, edition_id: int) -> tuple[StoryClicks, ...]:
    """The edition's story links, most human clicks first; a removed story's link only if
    somebody clicked it (a test copy sent before the editor took it out)."""
    rows = session.execute(
        select(TrackedLink, Post.title)
        .outerjoin(Post, Post.id == TrackedLink.post_id)
        .where(
            TrackedLink.edition_id == edition_id,
            or_(
                TrackedLink.position > 0,
                TrackedLink.human_clicks > 0,
                TrackedLink.machine_clicks > 0,
            ),
        )
        .order_by(
            TrackedLink.human_clicks.desc(),
            (TrackedLink.position == 0).asc(),
            TrackedLink.position,
            TrackedLink.number,
        )
    )
    return tuple(_story(link, title) for link, title in rows)


def _story(link: TrackedLink, title: str | None) -> StoryClicks:
    return StoryClicks(
        number=link.number, position=link.position, title=title or link.url, url=link.url,
        human_clicks=link.human_clicks, machine_clicks=link.machine_clicks,
    )  # fmt: skip


def _machine_clicks(session: Session, edition_id: int) -> int:
    total = session.scalar(
        select(func.sum(TrackedLink.machine_clicks)).where(TrackedLink.edition_id == edition_id)
    )
    return int(total or 0)


def click_hours(
    session: Session, edition_id: int, *, hours: int = CHART_HOURS
) -> tuple[HourClicks, ...]:
    """Clicks in each of the first ``hours`` hours after the edition started sending; an
    hour nobody clicked in is there with zeros."""
    counted = {
        row.hour: row
        for row in session.scalars(
            select(ClickHour).where(ClickHour.edition_id == edition_id, ClickHour.hour < hours)
        )
    }
    empty = ClickHour(human=0, machine=0)
    return tuple(
        HourClicks(h, counted.get(h, empty).human, counted.get(h, empty).machine)
        for h in range(hours)
    )


# --- A list's trend ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendPoint(_Rates):
    """One edition of a list, beside the others."""

    edition_id: int
    edition_date: date
    frequency: str
    send_started_at: datetime
    delivered: int
    growth: int  # net confirmed subscriptions since the previous edition
    unsubscribed: int
    unique_clickers: int
    bounced: int
    complaints: int


@dataclass(frozen=True)
class ListTrend:
    list_id: int
    slug: str
    name: str
    points: tuple[TrendPoint, ...]  # newest first
    since_list_began: bool  # the oldest point's growth counts from the list's start


def list_trend(
    session: Session, nl: NewsletterList, *, outcomes_of: OutcomesOf, limit: int = TREND_EDITIONS
) -> ListTrend:
    """The last ``limit`` editions of ``nl`` that started sending, newest first."""
    editions = session.execute(
        select(Edition.id, Edition.edition_date, Edition.frequency, Edition.send_started_at)
        .where(Edition.list_id == nl.id, Edition.send_started_at.is_not(None))
        .order_by(Edition.send_started_at.desc(), Edition.id.desc())
        .limit(limit + 1)
    ).all()
    shown, before = editions[:limit], editions[limit:]
    ids = [row.id for row in shown]
    outcomes = outcomes_of(session, ids)
    clickers = _unique_clickers(session, ids)
    starts = [(row.id, row.send_started_at) for row in reversed(shown)]
    growth = _growth(session, nl.id, starts, after=before[0].send_started_at if before else None)
    points = tuple(
        _point(
            row, outcomes[row.id], growth=growth.get(row.id, 0), clickers=clickers.get(row.id, 0)
        )
        for row in shown
    )
    return ListTrend(nl.id, nl.slug, nl.name, points, since_list_began=bool(shown) and not before)


def _point(row: Any, outcome: MailOutcomes, *, growth: int, clickers: int) -> TrendPoint:
    left = outcome.unsubscribed_link + outcome.unsubscribed_one_click + outcome.unsubscribed_email
    return TrendPoint(
        edition_id=row.id, edition_date=row.edition_date, frequency=row.frequency.value,
        send_started_at=row.send_started_at, delivered=outcome.delivered, growth=growth,
        unsubscribed=left, unique_clickers=clickers,
        bounced=outcome.bounced_hard + outcome.bounced_soft, complaints=outcome.complaints,
    )  # fmt: skip


def _unique_clickers(session: Session, ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(EditionEngagement.edition_id, EditionEngagement.unique_clickers).where(
            EditionEngagement.edition_id.in_(ids)
        )
    )
    return {edition_id: clickers for edition_id, clickers in rows}


def _growth(
    session: Session, list_id: int, starts: list[tuple[int, datetime]], *, after: datetime | None
) -> dict[int, int]:
    """Net subscriptions to the list in each edition's interval: (previous start, its start].

    ``starts`` is oldest first; ``after`` is the start of the edition before the oldest (None:
    the oldest counts from the list's beginning). One query, grouped by interval.
    """
    if not starts:
        return {}
    interval = case(
        *((ConsentEvent.created_at <= start, edition_id) for edition_id, start in starts),
        else_=None,
    )
    change = case((ConsentEvent.action.in_(JOINED), 1), else_=-1)
    query: Any = (
        select(interval.label("edition_id"), func.sum(change))
        .where(
            ConsentEvent.list_id == list_id,
            ConsentEvent.action.in_((*JOINED, ConsentAction.UNSUBSCRIBE)),
            ConsentEvent.created_at <= starts[-1][1],
        )
        .group_by(interval)
    )
    if after is not None:
        query = query.where(ConsentEvent.created_at > after)
    return {int(edition_id): int(net) for edition_id, net in session.execute(query)}
