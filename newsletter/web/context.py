"""What every route shares: settings, page templates, the limiter, the hand-off and the clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from newsletter.analytics.recorder import ClickRecorder, LinkCache
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.handoff import BrokerUnavailable, Handoff
from newsletter.resources import resource_path
from newsletter.subscriptions.consent import Client
from newsletter.web.ratelimit import LoginThrottle, SignupLimiter

log = logging.getLogger(__name__)

SIGNUP_WORDING = (
    "We will email you a link to confirm. You can change your preferences or unsubscribe "
    "at any time from any email we send."
)


@dataclass
class Web:
    settings: Settings
    limiter: SignupLimiter
    handoff: Handoff
    pages: jinja2.Environment
    clock: Clock
    login_throttle: LoginThrottle
    clicks: ClickRecorder
    links: LinkCache = field(default_factory=LinkCache)


def page_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_path("templates", "web")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def web(request: Request) -> Web:
    state: Web = request.app.state.web
    return state


def client(request: Request, source: str) -> Client:
    """Who made the request, for the consent log and the per-IP limits. The address is the
    one ``forwarded.ForwardedClient`` settled on (X-Forwarded-For believed only from a
    trusted proxy), never a header read here."""
    return Client(
        source=source,
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", "")[:500],
    )


def hand_over_send(request: Request, edition_id: int) -> None:
    """Hand a committed send to the workers. With the broker down the edition stays as
    committed (scheduled, or sending): the dispatcher, or the reconciler for a resumed send,
    enqueues it once the broker is back, so the editor's request still succeeds."""
    try:
        web(request).handoff.send_edition(edition_id)
    except BrokerUnavailable as error:
        log.error("edition %s left to the dispatcher: %s", edition_id, error)


def now(request: Request) -> datetime:
    """The app's clock: the one seam for the time of day, frozen in tests."""
    return web(request).clock()


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    settings = web(request).settings
    base = {
        "brand": settings.site_name,
        "site_name": settings.site_name,
        "site_url": settings.site_url,
        "postal_address": settings.postal_address,
        "language": "en",
    }
    html = web(request).pages.get_template(template).render({**base, **context})
    return HTMLResponse(html, status_code=status_code)


def message(
    request: Request,
    heading: str,
    *paragraphs: str,
    status_code: int = 200,
    link: dict[str, str] | None = None,
    brand: str | None = None,
) -> HTMLResponse:
    extra = {"brand": brand} if brand else {}
    return render(
        request, "message.html", status_code=status_code, heading=heading,
        paragraphs=paragraphs, link=link, **extra,
    )  # fmt: skip
