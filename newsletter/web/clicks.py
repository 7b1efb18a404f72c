"""The tracked-link redirect and the open pixel (:mod:`newsletter.analytics`).

``GET|HEAD /r/<link>/<reader>`` answers 302 to the story the link names, at once: the click
goes to a buffer (Redis) and beat writes the counts. Only links we signed lead anywhere, and
only to the URL stored for that link of that edition, so this is no open redirect.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from newsletter import handoff
from newsletter.analytics.flush import FlushResult
from newsletter.analytics.links import (
    destination,
    list_of_edition,
    read_link_token,
    read_open_token,
)
from newsletter.analytics.machines import Click, apple_proxy, scanner_agent
from newsletter.analytics.readers import read_reader
from newsletter.db import session_scope
from newsletter.rendering.placeholders import WEB_READER
from newsletter.web.context import Web, message, web

router = APIRouter(tags=["tracked links"])

# A transparent 1x1 GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
_NO_STORE = {"cache-control": "no-store, private"}


def _event(request: Request, kind: str, edition_id: int, number: int, reader: str) -> Click:
    settings = web(request).settings
    found = None if reader == WEB_READER else read_reader(settings.secret_key, edition_id, reader)
    agent = request.headers.get("user-agent", "")
    return Click(
        kind=kind,
        edition_id=edition_id,
        number=number,
        ref=WEB_READER if reader == WEB_READER else (found.ref if found else ""),
        sent_at=found.sent_at if found else 0.0,
        at=web(request).clock().timestamp(),
        head=request.method == "HEAD",
        scanner=scanner_agent(agent),
        proxy=kind == "o" and apple_proxy(agent, request.client.host if request.client else ""),
    )


def unknown_link(request: Request, slug: str | None = None) -> Response:
    """The 404 page of a link under /r/ that leads nowhere: to the archive instead."""
    archive = f"/archive/{slug}" if slug else web(request).settings.site_url
    return message(
        request,
        "This link does not lead anywhere",
        "It may have been copied incompletely, or changed. The story is still in the "
        "newsletter's archive.",
        status_code=404,
        link={"url": archive, "label": "Go to the archive"},
    )


_FOLLOW: dict[str, Any] = {
    "summary": "Follow a story link of an email (302 to the story; counted)",
    "status_code": 302,
    "responses": {404: {"description": "Not a link of any edition"}},
}


# HEAD too: link scanners ask with it, and are counted as machines.
@router.get("/r/{link}", operation_id="follow_link", **_FOLLOW)
@router.head("/r/{link}", include_in_schema=False)
@router.get("/r/{link}/{reader}", operation_id="follow_reader_link", **_FOLLOW)
@router.head("/r/{link}/{reader}", include_in_schema=False)
async def follow_link(request: Request, link: str, reader: str = "") -> Response:
    """Lead a reader to a story of an edition, and count the click."""
    app = web(request)
    named = read_link_token(app.settings.secret_key, link)
    if named is None:
        return unknown_link(request, None)
    found = app.links.get(named)
    if found is None:
        found = await run_in_threadpool(_load, app.settings.database_url, named)
        if found is None:
            slug = await run_in_threadpool(_slug, app.settings.database_url, named[0])
            return unknown_link(request, slug)
        app.links.put(named, found)
    event = _event(request, "c", named[0], named[1], reader)
    await app.clicks.record(event.encode())
    response = RedirectResponse(found[0], status_code=302, headers=_NO_STORE)
    if app.clicks.flush_due(event.at, app.settings.click_settle_seconds):
        response.background = BackgroundTask(flush_clicks, app)
    return response


@router.get("/o/{pixel}/{reader}", summary="The open pixel of an email (a 1x1 GIF; counted)")
async def open_pixel(request: Request, pixel: str, reader: str) -> Response:
    """A 1x1 image; fetched means opened, by a person or by a proxy (see machines)."""
    app = web(request)
    edition_id = read_open_token(app.settings.secret_key, pixel)
    if edition_id is not None:
        part = reader.removesuffix(".gif")
        await app.clicks.record(_event(request, "o", edition_id, 0, part).encode())
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


def flush_clicks(app: Web) -> FlushResult:
    """Write the settled clicks now: before a report is shown, and, without Redis (no beat),
    from the redirect every ``click_settle_seconds``."""
    buffer = app.clicks.buffer if app.clicks.in_process else None
    return handoff.flush_clicks(app.settings, app.clock, buffer)


def _load(database_url: str, link: tuple[int, int]) -> tuple[str, str] | None:
    with session_scope(database_url) as session:
        return destination(session, *link)


def _slug(database_url: str, edition_id: int) -> str | None:
    with session_scope(database_url) as session:
        return list_of_edition(session, edition_id)
