"""One reader as an operator sees them: whether mail to them is blocked and why, what came
back of their mail, and the button that lifts a block; and the table of blocked readers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import selectinload

from newsletter.db import session_scope
from newsletter.inbound import policy, stats
from newsletter.models import Editor, Subscriber, Subscription
from newsletter.web.admin.common import PAGE_SIZE, admin_page, back
from newsletter.web.admin.display import Pager, local_time, not_found
from newsletter.web.context import now, web

router = APIRouter(prefix="/admin", tags=["admin"])

SubscriberId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The reader's ID.")]
PageNumber = Annotated[int, Query(ge=1, le=100_000, description="Page, from 1.")]


def who(editor: Editor) -> str:
    """The consent log's name for the editor who lifted a block (its source holds 32
    characters: a longer address is named by the editor's ID instead)."""
    name = f"admin:{editor.email}"
    return name if len(name) <= 32 else f"admin:editor-{editor.id}"


@router.get("/blocked", response_class=HTMLResponse, summary="Readers whose mail is blocked")
def blocked(request: Request, page: PageNumber = 1) -> HTMLResponse:
    with session_scope(web(request).settings.database_url) as session:
        found = stats.blocked_readers(session, page=page, per_page=PAGE_SIZE)
    pager = Pager(page, found.total, "/admin/blocked")
    return admin_page(
        request, "blocked.html", pager=pager, readers=found.readers, local_time=local_time
    )


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse, summary="A reader")
def reader(request: Request, subscriber_id: SubscriberId) -> HTMLResponse:
    settings = web(request).settings
    moment = now(request)
    with session_scope(settings.database_url) as session:
        subscriber = session.get(
            Subscriber,
            subscriber_id,
            options=[
                selectinload(Subscriber.subscriptions).joinedload(Subscription.newsletter_list)
            ],
        )
        if subscriber is None:
            return not_found(request, f"There is no reader {subscriber_id}.")
        return admin_page(
            request, "reader.html", reader=subscriber,
            score=policy.decayed_score(subscriber, settings, moment),
            half_life=settings.bounce_score_half_life_days,
            events=stats.recent_events(session, subscriber.id), local_time=local_time,
        )  # fmt: skip


@router.post(
    "/subscribers/{subscriber_id}/unblock",
    response_class=HTMLResponse,
    summary="Lift a reader's block",
    description="Mail resumes to the lists the reader is still on; the consent log records "
    "which editor did it and why the reader had been blocked.",
)
def unblock(request: Request, subscriber_id: SubscriberId) -> Response:
    editor: Editor = request.state.editor
    with session_scope(web(request).settings.database_url) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return not_found(request, f"There is no reader {subscriber_id}.")
        email = subscriber.email
        lifted = policy.unblock(session, subscriber, who=who(editor), now=now(request))
    flash = (
        f"Unblocked {email}: mail resumes to the lists they are still on."
        if lifted
        else f"{email} is not blocked."
    )
    return back(request, f"/admin/subscribers/{subscriber_id}", flash)
