"""The editor API's request and response bodies: what the OpenAPI document shows.

Request bodies forbid unknown fields (a typo is a 422, not a silently ignored change) and
bound every string and list, so no request can ask for unbounded work.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from newsletter.config import Settings
from newsletter.delivery.progress import Progress
from newsletter.editions.build import archive_url, ordered_items
from newsletter.inbound.stats import EditionOutcomes
from newsletter.lists.tracking import CLICK_TRACKING_HELP, TRACK_OPENS_MEANS, UTM_TAGS_MEANS
from newsletter.models import (
    ClickTracking,
    Edition,
    EditionStatus,
    Frequency,
    NewsletterList,
    Post,
    StoryDetail,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
)
from newsletter.posts.schema import PostIn
from newsletter.rendering.render import sent_size

# Primary keys are 32-bit integers: a larger number can only be a mistake, and an
# unbounded one would overflow the database driver (a 500) instead of a clean 404.
Id = Annotated[int, Field(ge=1, le=2_147_483_647)]
MAX_IDS = 100  # more posts than any edition holds (a list's max_posts is at most 100)


def _without_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text, even in a search: refuse it here as bad input (422).
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Text from a request that reaches the database as it is.
NoNul = AfterValidator(_without_nul)


# --- Requests ------------------------------------------------------------------------------


class PostPush(PostIn):
    """A post as the CMS publishes it; sanitised on validation like every imported post."""

    model_config = ConfigDict(extra="forbid")


class EditionPatch(BaseModel):
    """Changes to a draft or scheduled edition, applied in one transaction: all or none.

    Applied in this order: ``remove``, ``order``, ``pinned``, then the words.
    """

    model_config = ConfigDict(extra="forbid")

    intro: str | None = Field(
        default=None, max_length=2000, description='The editor\'s note; "" removes it.'
    )
    subject: str | None = Field(
        default=None, max_length=300, description='Subject override; "" restores the generated one.'
    )
    preheader: str | None = Field(
        default=None,
        max_length=300,
        description='Preheader override; "" restores the generated one.',
    )
    order: list[Id] | None = Field(
        default=None, max_length=MAX_IDS, description="Every post ID of the edition, in order."
    )
    pinned: list[Id] | None = Field(
        default=None, max_length=MAX_IDS, description="Post IDs to pin; the others are unpinned."
    )
    remove: list[Id] | None = Field(
        default=None, max_length=MAX_IDS, description="Post IDs to take out of the edition."
    )

    @field_validator("intro", "subject", "preheader")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return None if value is None else _without_nul(value)

    @field_validator("subject", "preheader")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # A line break in a subject would be a header injection: refuse it as bad input.
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("must be a single line")
        return value


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None, max_length=320, description="Where to send it; default: your own address."
    )


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(
        description="When to send, with its offset: 2025-05-16T07:00:00+01:00"
    )

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 has no UTC
            raise ValueError("the time is out of range") from None


class ListPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: str | None = Field(
        default=None, max_length=100, description='Five-field cron, e.g. "0 7 * * *".'
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA name the schedule is read in."
    )
    requires_approval: bool | None = Field(
        default=None, description="Editions wait as drafts until an editor sends them."
    )
    weekly_day: int | None = Field(
        default=None, ge=0, le=6, description="Day of the weekly edition, 0 = Monday."
    )
    story_detail: StoryDetail | None = Field(
        default=None,
        description="What each story shows where its post has sections: dek (the dek and "
        "opening paragraph), first_section or all_sections.",
    )
    click_tracking: ClickTracking | None = Field(
        default=None, description=f"{CLICK_TRACKING_HELP}."
    )
    track_opens: bool | None = Field(default=None, description=f"Count opens: {TRACK_OPENS_MEANS}.")
    utm_tags: bool | None = Field(default=None, description=f"Tag story links: {UTM_TAGS_MEANS}.")


# --- Responses -----------------------------------------------------------------------------


class PageInfo(BaseModel):
    page: int
    per_page: int
    total: int


class PostOut(BaseModel):
    id: int
    guid: str
    url: str
    title: str
    dek: str
    summary: str
    body_html: str
    category: str
    author: str
    image_url: str | None
    image_alt: str
    published_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, post: Post) -> PostOut:
        return cls.model_validate(post, from_attributes=True)


class PostPushed(PostOut):
    result: Literal["created", "updated", "unchanged"]


class PostPage(PageInfo):
    items: list[PostOut]


class EditionSummary(BaseModel):
    id: int
    list: str = Field(description="The list's slug.")
    edition_date: date
    frequency: Frequency
    status: EditionStatus
    scheduled_at: datetime | None
    sent_at: datetime | None
    subject: str

    @classmethod
    def of(cls, edition: Edition) -> EditionSummary:
        return cls(
            id=edition.id, list=edition.newsletter_list.slug, edition_date=edition.edition_date,
            frequency=edition.frequency, status=edition.status,
            scheduled_at=edition.scheduled_at, sent_at=edition.sent_at, subject=edition.subject,
        )  # fmt: skip


class EditionPage(PageInfo):
    items: list[EditionSummary]


class EditionPost(BaseModel):
    id: int = Field(description="The post's ID (what order, pinned and remove take).")
    position: int = Field(description="1 = first in the email.")
    pinned: bool
    title: str
    url: str
    category: str
    published_at: datetime


class EditionDetail(EditionSummary):
    skip_reason: str
    created_at: datetime
    send_started_at: datetime | None
    cancelled_at: datetime | None
    preheader: str
    intro: str
    subject_override: str
    preheader_override: str
    posts: list[EditionPost]
    html_bytes: int = Field(
        description="Size of the HTML part as sent, quoted-printable (Gmail clips past ~102 KB)."
    )
    render_ms: int
    archive_url: str = Field(description="Its public page once sent: the email's browser link.")
    progress: Progress
    pause_reason: str = Field(
        description="Why the edition paused itself (the bounce and complaint circuit breaker); "
        "after an editor resumed it, prefixed with 'resumed by an editor after: '."
    )
    outcomes: EditionOutcomes = Field(
        description="What came back of it: bounces, sender-side refusals and complaints by "
        "reader, and unsubscribes made before the list's next edition (see docs/inbound.md)."
    )

    @classmethod
    def build(
        cls, edition: Edition, state: Progress, outcomes: EditionOutcomes, settings: Settings
    ) -> EditionDetail:
        posts = [
            EditionPost(
                id=item.post_id,
                position=index,
                pinned=item.pinned,
                title=item.post.title,
                url=item.post.url,
                category=item.post.category,
                published_at=item.post.published_at,
            )
            for index, item in enumerate(ordered_items(edition), start=1)
        ]
        return cls(
            **EditionSummary.of(edition).model_dump(),
            skip_reason=edition.skip_reason, created_at=edition.created_at,
            send_started_at=edition.send_started_at, cancelled_at=edition.cancelled_at,
            preheader=edition.preheader, intro=edition.intro,
            subject_override=edition.subject_override,
            preheader_override=edition.preheader_override, posts=posts,
            html_bytes=sent_size(edition.html), render_ms=edition.render_ms,
            archive_url=archive_url(edition, settings), progress=state,
            pause_reason=edition.pause_reason, outcomes=outcomes,
        )  # fmt: skip


class Refreshed(BaseModel):
    added: int = Field(description="Posts added by this refresh.")
    edition: EditionDetail


class Queued(BaseModel):
    status: Literal["queued"]
    message: str


class SubscriptionOut(BaseModel):
    list: str
    status: SubscriptionStatus
    frequency: Frequency
    paused: bool
    created_at: datetime
    confirmed_at: datetime | None


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str
    status: SubscriberStatus
    created_at: datetime
    subscriptions: list[SubscriptionOut]

    @classmethod
    def of(cls, subscriber: Subscriber) -> SubscriberOut:
        return cls(
            id=subscriber.id, email=subscriber.email, name=subscriber.name,
            status=subscriber.status, created_at=subscriber.created_at,
            subscriptions=[
                SubscriptionOut(
                    list=s.newsletter_list.slug, status=s.status, frequency=s.frequency,
                    paused=s.paused_at is not None, created_at=s.created_at,
                    confirmed_at=s.confirmed_at,
                )
                for s in sorted(subscriber.subscriptions, key=lambda s: s.newsletter_list.slug)
            ],
        )  # fmt: skip


class SubscriberPage(PageInfo):
    items: list[SubscriberOut]


class ListSettings(BaseModel):
    slug: str
    name: str
    schedule: str
    timezone: str
    requires_approval: bool
    weekly_day: int
    story_detail: StoryDetail
    click_tracking: ClickTracking
    track_opens: bool
    utm_tags: bool
    max_posts: int
    from_name: str
    from_address: str

    @classmethod
    def of(cls, nl: NewsletterList) -> ListSettings:
        return cls.model_validate(nl, from_attributes=True)
