"""The edition page: look at an edition as readers will (desktop, phone, plain text), change
what it holds, test it, send or schedule it, and watch it go out.

Every button is a form POST that calls one function of ``newsletter.editions.service``,
commits, and only then asks the workers to send (a big list takes seconds to fan out, which
is the workers' job, not the request's). An edition that cannot do what was asked answers
409 with the page and the service's sentence; a form that cannot be read, 400.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from newsletter.db import session_scope
from newsletter.delivery.fanout import audience_size
from newsletter.delivery.progress import progress
from newsletter.editions import lifecycle, service
from newsletter.editions.build import ordered_items
from newsletter.editions.service import EditionError, EditionNotFound, Touches, get_edition
from newsletter.inbound.stats import edition_outcomes
from newsletter.lists.schedule import zone
from newsletter.models import (
    EDITABLE_STATUSES,
    Edition,
    EditionStatus,
)
from newsletter.rendering.digest import GMAIL_CLIP_BYTES
from newsletter.rendering.placeholders import Markers
from newsletter.rendering.render import sent_size
from newsletter.web.admin.common import admin_page, admin_part, back
from newsletter.web.admin.display import local_time, not_found
from newsletter.web.context import hand_over_send, now, web

router = APIRouter(prefix="/admin/editions", tags=["admin"])

EditionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The edition's ID.")]
PostId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The post's ID.")]

# While an edition is in one of these, its numbers move: the page polls them.
LIVE = (EditionStatus.SCHEDULED, EditionStatus.SENDING, EditionStatus.PAUSED)

SAMPLE_ADDRESS = "reader@example.com"
# The preview is the email, framed by the admin: its own inline styles and https images, and
# nothing else (no scripts, no forms, no other framer).
PREVIEW_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "x-frame-options": "SAMEORIGIN",
    "cache-control": "no-store",
}


class BadForm(ValueError):
    """What the editor typed cannot be used; the message says how to fix it (400)."""


def as_sample_reader(body: str, base_url: str, marker_key: str) -> str:
    """The stored email with its per-reader markers filled in for a made-up reader."""
    base = base_url.rstrip("/")
    return Markers(marker_key).fill(
        body, email=SAMPLE_ADDRESS, unsubscribe_url=f"{base}/unsubscribe/sample-reader",
        preferences_url=f"{base}/preferences/sample-reader",
    )  # fmt: skip


def local_moment(value: str, timezone: str) -> datetime:
    """A ``datetime-local`` input (no zone: the list's clock) as a UTC moment."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadForm(
            f"{value!r} is not a date and time: use the picker, or type e.g. 2025-05-16T07:00."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(timezone))
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past the calendar's ends
        raise BadForm(f"{value!r} is too far from today to schedule.") from None


def _schedule_value(edition: Edition, moment: datetime) -> str:
    """The schedule field's starting value: the edition's time, or an hour from now."""
    at = edition.scheduled_at if edition.scheduled_at and edition.scheduled_at > moment else None
    at = at or moment + timedelta(hours=1)
    return f"{at.astimezone(zone(edition.newsletter_list.timezone)):%Y-%m-%dT%H:%M}"


def _stored_form(edition: Edition, moment: datetime) -> dict[str, str]:
    """The forms' starting values: what the edition holds."""
    return {
        "intro": edition.intro,
        "subject": edition.subject_override,
        "preheader": edition.preheader_override,
        "at": _schedule_value(edition, moment),
    }


def _state(session: Session, edition: Edition, moment: datetime) -> dict[str, Any]:
    """What the page's controls depend on: its status, and the numbers that go with it.

    The page's script swaps these parts in (``/controls``) when a send moves the edition on,
    so a page open through a send always offers what the edition can do now."""
    editable = edition.status in EDITABLE_STATUSES
    shows_progress = edition.status in LIVE or edition.send_started_at is not None
    return {
        "edition": edition, "nl": edition.newsletter_list, "items": ordered_items(edition),
        "status": edition.status.value, "live": edition.status in LIVE, "editable": editable,
        "progress": progress(session, edition.id, now=moment) if shows_progress else None,
        "outcomes": edition_outcomes(session, edition.id) if edition.send_started_at else None,
        "overridden": lifecycle.OVERRIDDEN,
        # Who a send would reach matters only while it can still be sent.
        "readers": audience_size(session, edition) if editable else None,
        "local_time": local_time,
    }  # fmt: skip


def _edition_page(
    request: Request,
    edition_id: int,
    *,
    error: str = "",
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page, optionally with an error and the form values the editor typed."""
    settings = web(request).settings
    moment = now(request)
    with session_scope(settings.database_url) as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            return not_found(request, f"There is no edition {edition_id}.")
        form = {**_stored_form(edition, moment), **(typed or {})}
        html_bytes = sent_size(edition.html)
        return admin_page(
            request, "edition.html", status_code=status_code, error=error, form=form,
            html_bytes=html_bytes, clip_bytes=GMAIL_CLIP_BYTES,
            clipped=html_bytes > GMAIL_CLIP_BYTES,
            text=as_sample_reader(edition.text, settings.base_url, edition.marker_key),
            **_state(session, edition, moment),
        )  # fmt: skip


Action = Callable[[Session, Edition], str]


def _act(
    request: Request,
    edition_id: int,
    action: Action,
    *,
    after: Callable[[], None] | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    """Run one editor action in its own transaction; ``after`` runs once it is committed."""
    try:
        with session_scope(web(request).settings.database_url) as session:
            flash = action(session, get_edition(session, edition_id))
    except EditionNotFound as error:
        return not_found(request, str(error))
    except EditionError as error:
        return _edition_page(request, edition_id, error=str(error), status_code=409, typed=typed)
    except BadForm as error:
        return _edition_page(request, edition_id, error=str(error), status_code=400, typed=typed)
    if after is not None:
        after()
    return back(request, f"/admin/editions/{edition_id}", flash)


@router.get("/{edition_id}", response_class=HTMLResponse, summary="An edition: preview and send")
def edition_page(request: Request, edition_id: EditionId) -> HTMLResponse:
    return _edition_page(request, edition_id)


@router.get(
    "/{edition_id}/controls",
    response_class=HTMLResponse,
    summary="The parts of the edition page that follow its status",
    description=(
        "Its facts, buttons, posts and forms as they are now: the page's script swaps them in "
        "when the live progress says the edition's status changed. Leaves the flash message "
        "for the page it was meant for."
    ),
)
def controls(request: Request, edition_id: EditionId) -> HTMLResponse:
    moment = now(request)
    with session_scope(web(request).settings.database_url) as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            return not_found(request, f"There is no edition {edition_id}.")
        return admin_part(
            request, "edition_controls.html", form=_stored_form(edition, moment),
            **_state(session, edition, moment),
        )  # fmt: skip


@router.get(
    "/{edition_id}/preview",
    response_class=HTMLResponse,
    summary="The edition's email for the preview frames",
    description="The stored HTML with a sample reader's address and links; framable by /admin.",
)
def preview(request: Request, edition_id: EditionId) -> HTMLResponse:
    settings = web(request).settings
    with session_scope(settings.database_url) as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            return not_found(request, f"There is no edition {edition_id}.")
        body = as_sample_reader(edition.html, settings.base_url, edition.marker_key)
    return HTMLResponse(body, headers=PREVIEW_HEADERS)


@router.get(
    "/{edition_id}/progress",
    summary="Live delivery counts of an edition",
    description="Polled by the edition page while the edition is scheduled, sending or paused.",
    responses={404: {"description": "No such edition"}},
)
def progress_json(request: Request, edition_id: EditionId) -> JSONResponse:
    with session_scope(web(request).settings.database_url) as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            return JSONResponse({"detail": f"There is no edition {edition_id}."}, status_code=404)
        state = progress(session, edition.id, now=now(request))
    return JSONResponse(asdict(state), headers={"cache-control": "no-store"})


class PostAction(enum.StrEnum):
    MOVE_UP = "move-up"
    MOVE_DOWN = "move-down"
    PIN = "pin"
    UNPIN = "unpin"
    REMOVE = "remove"


def _title(edition: Edition, post_id: int) -> str:
    for item in edition.items:
        if item.post_id == post_id:
            return item.post.title
    raise EditionError(f"Post {post_id} is not in this edition.")


@router.post(
    "/{edition_id}/posts/{post_id}/{action}",
    response_class=HTMLResponse,
    summary="Move, pin, unpin or remove one post of the edition",
)
def change_post(
    request: Request, edition_id: EditionId, post_id: PostId, action: PostAction
) -> Response:
    settings = web(request).settings

    def run(session: Session, edition: Edition) -> str:
        title = _title(edition, post_id)
        if action in (PostAction.MOVE_UP, PostAction.MOVE_DOWN):
            steps = -1 if action == PostAction.MOVE_UP else 1
            service.move(session, edition, post_id, steps, settings)
            return f"Moved “{title}” {'up' if steps < 0 else 'down'}."
        if action in (PostAction.PIN, PostAction.UNPIN):
            service.pin(session, edition, post_id, action == PostAction.PIN, settings)
            return f"{'Pinned' if action == PostAction.PIN else 'Unpinned'} “{title}”."
        service.remove_post(session, edition, post_id, settings)
        return f"Removed “{title}” from this edition."

    return _act(request, edition_id, run)


@router.post(
    "/{edition_id}/edit",
    response_class=HTMLResponse,
    summary="Change the intro note, subject and preheader",
    description="An empty subject or preheader goes back to the generated one.",
)
def edit(
    request: Request,
    edition_id: EditionId,
    intro: Annotated[str, Form(max_length=20_000)] = "",
    subject: Annotated[str, Form(max_length=2_000)] = "",
    preheader: Annotated[str, Form(max_length=2_000)] = "",
) -> Response:
    touches = Touches(intro=intro, subject=subject, preheader=preheader)

    def run(session: Session, edition: Edition) -> str:
        service.edit(session, edition, touches, web(request).settings)
        return "Saved, and the email is rendered again."

    typed = {"intro": intro, "subject": subject, "preheader": preheader}
    return _act(request, edition_id, run, typed=typed)


@router.post("/{edition_id}/render", response_class=HTMLResponse, summary="Render again")
def rerender(request: Request, edition_id: EditionId) -> Response:
    def run(session: Session, edition: Edition) -> str:
        service.rerender(edition, web(request).settings)
        return "The email is rendered again from its posts."

    return _act(request, edition_id, run)


@router.post(
    "/{edition_id}/refresh",
    response_class=HTMLResponse,
    summary="Add the posts that belong in it and arrived since it was built, late ones included",
)
def refresh(request: Request, edition_id: EditionId) -> Response:
    def run(session: Session, edition: Edition) -> str:
        added = service.refresh_posts(
            session, edition, now=now(request), settings=web(request).settings
        )
        if not added:
            return "No new posts since this edition was built."
        return f"Added {added} new post{'s' if added != 1 else ''} at the top."

    return _act(request, edition_id, run)


@router.post(
    "/{edition_id}/test",
    response_class=HTMLResponse,
    summary="Send a [TEST] copy to the signed-in editor",
)
def send_test(request: Request, edition_id: EditionId) -> Response:
    address: str = request.state.editor.email

    def run(session: Session, edition: Edition) -> str:
        if not edition.html:
            raise EditionError(
                f"This edition is {edition.status.value} and has no email to test"
                + (f": {edition.skip_reason}." if edition.skip_reason else ".")
            )
        return f"A test copy is on its way to {address}."

    return _act(
        request, edition_id, run, after=lambda: web(request).handoff.send_test(edition_id, address)
    )


@router.post(
    "/{edition_id}/send",
    response_class=HTMLResponse,
    summary="Send the edition to its readers now",
    description="Approves it for now; the workers create the deliveries and send them.",
)
def send_now(request: Request, edition_id: EditionId) -> Response:
    def run(session: Session, edition: Edition) -> str:
        moment = now(request)
        service.schedule(session, edition, moment, now=moment)
        return "Sending has started: the numbers below move as the messages go out."

    return _act(request, edition_id, run, after=lambda: hand_over_send(request, edition_id))


@router.post(
    "/{edition_id}/schedule",
    response_class=HTMLResponse,
    summary="Schedule the edition",
    description="``at`` is a local date and time on the list's clock (its timezone).",
)
def schedule(
    request: Request, edition_id: EditionId, at: Annotated[str, Form(max_length=40)]
) -> Response:
    def run(session: Session, edition: Edition) -> str:
        tz = edition.newsletter_list.timezone
        moment = local_moment(at, tz)
        service.schedule(session, edition, moment, now=now(request))
        return f"Scheduled for {local_time(moment, tz)}."

    return _act(request, edition_id, run, typed={"at": at})


@router.post("/{edition_id}/pause", response_class=HTMLResponse, summary="Pause a send")
def pause(request: Request, edition_id: EditionId) -> Response:
    def run(session: Session, edition: Edition) -> str:
        service.pause(session, edition)
        return "Paused: the batches stop before their next group. Resume carries on."

    return _act(request, edition_id, run)


@router.post("/{edition_id}/resume", response_class=HTMLResponse, summary="Resume a paused send")
def resume(request: Request, edition_id: EditionId) -> Response:
    def run(session: Session, edition: Edition) -> str:
        service.resume(session, edition)
        return "Resumed: sending carries on where it stopped."

    return _act(request, edition_id, run, after=lambda: hand_over_send(request, edition_id))


@router.post("/{edition_id}/cancel", response_class=HTMLResponse, summary="Cancel the edition")
def cancel(request: Request, edition_id: EditionId) -> Response:
    def run(session: Session, edition: Edition) -> str:
        dropped = service.cancel(session, edition, now=now(request))
        if not dropped:
            return "Cancelled: this edition will not be sent."
        return f"Cancelled: {dropped:,} readers not yet sent to will not get it."

    return _act(request, edition_id, run)
