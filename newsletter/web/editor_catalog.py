"""The editor API's catalogue: posts pushed by the CMS, subscribers and lists."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from newsletter.lists.service import change_schedule, get_list
from newsletter.lists.tracking import change_tracking
from newsletter.models import (
    Post,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.search import posts_matching
from newsletter.subscriptions.search import subscribers_matching
from newsletter.web.editor_common import (
    LIST_NOT_FOUND,
    ROUTER_SETTINGS,
    ListSlug,
    PageNumber,
    PerPage,
    Search,
    Slug,
    paginate,
    unit_of_work,
)
from newsletter.web.editor_schemas import (
    ListPatch,
    ListSettings,
    PostOut,
    PostPage,
    PostPush,
    PostPushed,
    SubscriberOut,
    SubscriberPage,
)

router = APIRouter(**ROUTER_SETTINGS)


# --- Posts ---------------------------------------------------------------------------------


@router.post(
    "/posts",
    status_code=201,
    response_model=PostPushed,
    responses={
        200: {"model": PostPushed, "description": "A post with this GUID was already stored."},
        413: {"description": "The request body is over the web app's size limit."},
    },
    summary="Store a post as the CMS publishes it (idempotent on its GUID)",
)
def push_post(request: Request, response: Response, body: PostPush) -> PostPushed:
    """201 the first time; 200 after, updated in place if its content changed. The HTML is
    sanitised as for any imported post: scripts, handlers, styles and images are dropped."""
    for attempt in (1, 2):
        try:
            with unit_of_work(request) as session:
                report = upsert_posts(session, [body])
                post = session.get_one(Post, report.post_ids[0])
                result = (
                    "created" if report.created else "updated" if report.updated else "unchanged"
                )
                pushed = PostPushed(**PostOut.of(post).model_dump(), result=result)
        except IntegrityError:
            # The same new GUID pushed twice at once: the other push stored it; now it is an
            # update (or nothing) for this one.
            if attempt == 2:
                raise
            continue
        if result != "created":
            response.status_code = 200
        return pushed
    raise AssertionError("unreachable")


@router.get("/posts", response_model=PostPage, summary="Posts, newest first; search titles")
def list_posts(
    request: Request,
    q: Search = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
) -> PostPage:
    with unit_of_work(request) as session:
        posts, total = paginate(session, posts_matching(q), page, per_page)
        return PostPage(
            items=[PostOut.of(p) for p in posts], page=page, per_page=per_page, total=total
        )


# --- Subscribers and lists -----------------------------------------------------------------


@router.get(
    "/subscribers",
    response_model=SubscriberPage,
    responses=LIST_NOT_FOUND,
    summary="Readers, newest first; search addresses, filter by list and subscription status",
)
def list_subscribers(
    request: Request,
    q: Search = "",
    status: SubscriptionStatus | None = None,
    list_slug: ListSlug = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
) -> SubscriberPage:
    with unit_of_work(request) as session:
        list_id = get_list(session, list_slug).id if list_slug else None
        query = subscribers_matching(q, status=status, list_id=list_id).options(
            selectinload(Subscriber.subscriptions).selectinload(Subscription.newsletter_list)
        )
        rows, total = paginate(session, query, page, per_page)
        return SubscriberPage(
            items=[SubscriberOut.of(s) for s in rows], page=page, per_page=per_page, total=total
        )


@router.patch(
    "/lists/{slug}",
    response_model=ListSettings,
    responses=LIST_NOT_FOUND,
    summary="Change a list's schedule, timezone, approval, weekly day, story detail and tracking",
)
def change_list(request: Request, slug: Slug, patch: ListPatch) -> ListSettings:
    """The schedule and timezone are checked together: a 422 says what is wrong."""
    with unit_of_work(request) as session:
        nl = get_list(session, slug)
        change_schedule(
            nl, schedule=patch.schedule, timezone=patch.timezone,
            requires_approval=patch.requires_approval, weekly_day=patch.weekly_day,
        )  # fmt: skip
        if patch.story_detail is not None:
            nl.story_detail = patch.story_detail
        change_tracking(
            nl, click_tracking=patch.click_tracking, track_opens=patch.track_opens,
            utm_tags=patch.utm_tags,
        )  # fmt: skip
        return ListSettings.of(nl)
