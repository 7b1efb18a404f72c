"""Mail providers' webhooks: ``POST /webhooks/ses``, ``/sendgrid``, ``/mailgun``, ``/postmark``.

Each is authenticated by its provider's signature or credentials (see
:mod:`newsletter.inbound.providers`), never by an editor's session, and is enabled by its
setting: an empty one answers 404. Every answer is JSON:

- 200 ``{"recorded": n, "duplicates": m}``: each event committed before the answer; an event
  the provider delivered before (by its own id) counts as a duplicate and changes nothing.
- 4xx for a request we will not act on (bad signature or credentials, a Mailgun signature
  used before, malformed body, a certificate host not allowed): providers do not retry a
  4xx, and the same body would fail the same way again. A body that trips up a parser in a
  way nobody foresaw is a 400 too, logged with its traceback: still the body's fault.
- 503 when the events could not be stored just now (the database is down) or the signing
  certificate could not be fetched: the one 5xx, and the one providers expect, since it makes
  them deliver the events again later instead of dropping them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.handoff import TokenReused, record_provider_event, spend_provider_token
from newsletter.inbound.process import reader_of_message_id
from newsletter.inbound.providers import (
    ProviderEvent,
    ProviderRefused,
    mailgun,
    postmark,
    sendgrid,
    ses,
)
from newsletter.web.context import web

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

RETRY_AFTER_S = 60


class Recorded(BaseModel):
    recorded: int
    duplicates: int


class Problem(BaseModel):
    detail: str


_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": description}
    for code, description in (
        (400, "The body is not what the provider sends."),
        (401, "Missing or wrong credentials (Postmark)."),
        (403, "Missing, wrong or reused signature, or a certificate host not allowed."),
        (404, "This webhook is not enabled here."),
        (413, "The body is over the request size limit."),
        (503, "Could not be recorded just now: the provider retries later."),
    )
}
# The body is read raw (its signature covers the exact bytes), so FastAPI cannot describe it.
_JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}}


def _problem(status_code: int, detail: str) -> JSONResponse:
    headers = {}
    if status_code == 401:
        headers["www-authenticate"] = 'Basic realm="webhooks"'
    if status_code == 503:
        headers["retry-after"] = str(RETRY_AFTER_S)
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _not_enabled(provider: str) -> JSONResponse:
    return _problem(404, f"The {provider} webhook is not enabled on this site.")


# What a provider's ``read`` gives: the request's events, and the one-time token its
# signature carries (Mailgun's, whose requests carry one event each), to be spent with the
# event; None for the others.
Read = tuple[list[ProviderEvent], str | None]

REUSED = (
    "This signature was used before: each Mailgun token signs one request, so this one is "
    "refused as a replay."
)


def _record(
    events: list[ProviderEvent], token: str | None, source: str, settings: Settings,
    clock: Clock,
) -> tuple[int, int]:  # fmt: skip
    """Commit each event (with the reader our Message-ID names); (recorded, duplicates).

    A token is spent even by a request with no event we keep, so that its signature cannot
    carry one later; such a request changes nothing, so a spent token there is no matter.
    """
    if token is not None and not events:
        spend_provider_token(source, token, settings, clock)
    recorded = duplicates = 0
    for event in events:
        if event.message_id:
            with session_scope(settings.database_url) as session:
                reader = reader_of_message_id(session, settings, event.message_id)
            event = event.about(reader)
        new = record_provider_event(
            event.raw, event.signals, source=source, external_id=event.event_id,
            settings=settings, clock=clock, token=token,
        )  # fmt: skip
        recorded += new
        duplicates += not new
    return recorded, duplicates


async def _receive(request: Request, source: str, read: Callable[[bytes], Read]) -> JSONResponse:
    """Verify and parse the body with ``read`` (in a thread: SES may fetch a certificate),
    then record its events."""
    state = web(request)
    body = await request.body()
    try:
        events, token = await run_in_threadpool(read, body)
        recorded, duplicates = await run_in_threadpool(
            _record, events, token, source, state.settings, state.clock
        )
    except ProviderRefused as refused:
        log.warning("webhook %s refused (%s): %s", source, refused.status_code, refused.message)
        return _problem(refused.status_code, refused.message)
    except TokenReused as reused:
        log.warning("webhook %s refused (403): %s", source, reused)
        return _problem(403, REUSED)
    except SQLAlchemyError as error:
        log.error("webhook %s: could not record its events: %s", source, error)
        return _problem(503, "The events could not be recorded just now; please retry.")
    except Exception:  # a body no parser foresaw is still the body's fault, not a 500
        log.exception("webhook %s: a body that could not be read or recorded", source)
        return _problem(400, f"The body could not be read as a {source} webhook.")
    return JSONResponse({"recorded": recorded, "duplicates": duplicates})


@router.post(
    "/ses", response_model=Recorded, responses=_RESPONSES, openapi_extra=_JSON_BODY,
    summary="Amazon SES bounces and complaints, through SNS (signed)",
)  # fmt: skip
async def ses_notifications(request: Request) -> JSONResponse:
    """SNS notifications and subscription confirmations, verified by SNS's signature."""
    settings = web(request).settings
    if not settings.webhook_ses_topic_arns.strip():
        return _not_enabled("SES")
    hosts = settings.webhook_ses_certificate_hosts

    def read(body: bytes) -> Read:
        message = ses.read(body)
        ses.verify(message, topic_arns=settings.webhook_ses_topic_arns, certificate_hosts=hosts)
        if message.type == "SubscriptionConfirmation":
            ses.confirm(message, certificate_hosts=hosts)
            log.info("confirmed the SNS subscription to %s", message.topic_arn)
        return ses.events(message, body), None

    return await _receive(request, "ses", read)


@router.post(
    "/sendgrid", response_model=Recorded, responses=_RESPONSES, openapi_extra=_JSON_BODY,
    summary="SendGrid's Event Webhook (ECDSA-signed)",
)  # fmt: skip
async def sendgrid_events(request: Request) -> JSONResponse:
    state = web(request)
    key = state.settings.webhook_sendgrid_public_key.strip()
    if not key:
        return _not_enabled("SendGrid")
    headers, now = request.headers, state.clock()

    def read(body: bytes) -> Read:
        sendgrid.verify(body, headers, public_key=key, now=now)
        return sendgrid.parse(body), None

    return await _receive(request, "sendgrid", read)


@router.post(
    "/mailgun", response_model=Recorded, responses=_RESPONSES, openapi_extra=_JSON_BODY,
    summary="Mailgun's webhooks (HMAC-signed)",
)  # fmt: skip
async def mailgun_events(request: Request) -> JSONResponse:
    state = web(request)
    key = state.settings.webhook_mailgun_signing_key.strip()
    if not key:
        return _not_enabled("Mailgun")
    now = state.clock()

    def read(body: bytes) -> Read:
        data = mailgun.read(body)
        token = mailgun.verify(data, signing_key=key, now=now)
        return mailgun.parse(data, body), token

    return await _receive(request, "mailgun", read)


@router.post(
    "/postmark", response_model=Recorded, responses=_RESPONSES, openapi_extra=_JSON_BODY,
    summary="Postmark's webhooks (basic auth)",
)  # fmt: skip
async def postmark_events(request: Request) -> JSONResponse:
    credentials = web(request).settings.webhook_postmark_credentials
    if not credentials:
        return _not_enabled("Postmark")
    authorization = request.headers.get("authorization", "")

    def read(body: bytes) -> Read:
        # Credentials before the body: a stranger learns nothing about what we parse.
        postmark.verify(authorization, credentials=credentials)
        return postmark.parse(body), None

    return await _receive(request, "postmark", read)
