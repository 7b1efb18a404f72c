"""Mail that came back, as an operator reviews it: every stored message with its status,
kind, error and what it did (``/admin/inbound``), and one message in full, raw bytes
included (``/admin/inbound/{id}``). Malformed mail is kept and reported here, never hidden."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from newsletter.db import session_scope
from newsletter.inbound.returned import returned_message, returned_messages
from newsletter.models import InboundStatus
from newsletter.web.admin.common import PAGE_SIZE, BadFilter, admin_page, chosen_status
from newsletter.web.admin.display import Pager, local_time, not_found
from newsletter.web.context import web

router = APIRouter(prefix="/admin", tags=["admin"])

MessageId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The returned message's ID.")]
PageNumber = Annotated[int, Query(ge=1, le=100_000, description="Page, from 1.")]
# A message may be up to NEWSLETTER_INBOUND_MAX_BYTES (5 MB): the page shows its start, which
# is where the headers and the report are; 'newsletter inbound show ID --raw' prints it all.
RAW_SHOWN_BYTES = 100_000


@router.get("/inbound", response_class=HTMLResponse, summary="Mail that came back")
def returned(
    request: Request,
    status: Annotated[
        str, Query(max_length=20, description="received, processed or failed; empty: any.")
    ] = "",
    page: PageNumber = 1,
) -> HTMLResponse:
    statuses = [s.value for s in InboundStatus]
    try:
        wanted = chosen_status(request, status, InboundStatus)
    except BadFilter as bad:
        return bad.response
    with session_scope(web(request).settings.database_url) as session:
        found = returned_messages(session, status=wanted, page=page, per_page=PAGE_SIZE)
    pager = Pager(page, found.total, "/admin/inbound", (("status", status),))
    return admin_page(
        request, "inbound.html", pager=pager, messages=found.messages, status=status,
        statuses=statuses, local_time=local_time,
    )  # fmt: skip


@router.get(
    "/inbound/{message_id}", response_class=HTMLResponse, summary="One message that came back"
)
def returned_one(request: Request, message_id: MessageId) -> HTMLResponse:
    with session_scope(web(request).settings.database_url) as session:
        detail = returned_message(session, message_id)
    if detail is None:
        return not_found(request, f"There is no returned message {message_id}.")
    raw, cut = detail.raw_text(RAW_SHOWN_BYTES)
    return admin_page(
        request, "inbound_message.html", detail=detail, message=detail.message, raw=raw,
        cut=cut, shown_bytes=RAW_SHOWN_BYTES, local_time=local_time,
    )  # fmt: skip
