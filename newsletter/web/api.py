"""The public JSON API, version 1."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.models import NewsletterList
from newsletter.subscriptions.consent import tracking_notice
from newsletter.web.context import web
from newsletter.web.signup import SignupRefused, sign_up

router = APIRouter(prefix="/api/v1", tags=["api"])

ACCEPTED = (
    "Thanks. If this address can be subscribed, a confirmation link is on its way to it. "
    "The subscription starts once the link is followed."
)


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320, description="The reader's address.")
    lists: list[str] = Field(min_length=1, max_length=20, description="List slugs to join.")
    frequency: Literal["daily", "weekly"] = "daily"
    name: str = Field(default="", max_length=200)
    website: str = Field(default="", max_length=200, description="Leave empty (spam trap).")


class Accepted(BaseModel):
    status: Literal["pending"]
    message: str


class Problem(BaseModel):
    detail: str


class ListInfo(BaseModel):
    slug: str
    name: str
    description: str
    tracking_notice: str = Field(
        description="What the list records about its readers' clicks, to show beside the list "
        "wherever readers choose it: a signup records this wording in its consent log. "
        "Empty when the list stores nobody's clicks."
    )


@router.post(
    "/subscriptions",
    status_code=202,
    response_model=Accepted,
    responses={400: {"model": Problem}, 422: {"model": Problem}, 429: {"model": Problem}},
    summary="Sign up for one or more lists (double opt-in)",
)
def create_subscription(request: Request, body: SubscriptionRequest) -> JSONResponse:
    """The same answer whether or not the address is known, so it cannot be probed."""
    try:
        sign_up(
            request, email=body.email, name=body.name, list_slugs=body.lists,
            frequency=body.frequency, honeypot=body.website, source="api",
        )  # fmt: skip
    except SignupRefused as error:
        return JSONResponse({"detail": str(error)}, status_code=400)
    return JSONResponse({"status": "pending", "message": ACCEPTED}, status_code=202)


@router.get("/lists", response_model=list[ListInfo], summary="Lists a reader can join")
def public_lists(request: Request) -> list[ListInfo]:
    with session_scope(web(request).settings.database_url) as session:
        rows = session.scalars(select(NewsletterList).order_by(NewsletterList.name)).all()
        return [
            ListInfo(
                slug=r.slug, name=r.name, description=r.description,
                tracking_notice=tracking_notice(r),
            )
            for r in rows
        ]  # fmt: skip
