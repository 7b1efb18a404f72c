"""The editor API's reports: an edition's report (JSON and CSV) and a list's trend.

The same editor API token as the rest of ``/api/v1`` (``Authorization: Bearer nlt_...``);
the settled clicks are written before each answer, so it holds the latest counts.
Rates are shares (0.0-1.0) of the readers an edition was delivered to, null when it was
delivered to nobody.
"""

from __future__ import annotations

import builtins  # the reports name a field `list`, as the rest of the API does
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from newsletter.analytics.report import EditionReport, ListTrend
from newsletter.web.editor_common import (
    LIST_NOT_FOUND,
    NOT_FOUND,
    ROUTER_SETTINGS,
    EditionId,
    Slug,
)
from newsletter.web.reporting import csv_download, load_report, load_trend, write_settled_clicks

router = APIRouter(**ROUTER_SETTINGS)


class StoryOut(BaseModel):
    number: int = Field(description="The link's own number in the edition.")
    position: int = Field(description="Where the story stands in the email; 0: removed.")
    title: str = Field(description="The post's title, or the URL when the post is gone.")
    url: str
    human_clicks: int
    machine_clicks: int


class HourOut(BaseModel):
    hour: int = Field(description="0 is the first hour after the edition started sending.")
    human: int
    machine: int


class OpensOut(BaseModel):
    """Opens are an estimate: blocked images hide readers, privacy proxies open every email."""

    human: int
    machine: int = Field(description="Apple Mail Privacy Protection and other proxies.")
    unique_openers: int
    open_rate: float | None


class UnsubscribesOut(BaseModel):
    link: int = Field(description="The email's unsubscribe link or the preferences page.")
    one_click: int = Field(description="RFC 8058 one-click, from the reader's mail program.")
    email: int = Field(description="An email request, or one a sending provider reported.")
    total: int


class ReportOut(BaseModel):
    edition_id: int
    list: str = Field(description="The list's slug.")
    edition_date: date
    frequency: str
    subject: str
    status: str
    send_started_at: datetime | None
    click_tracking: str = Field(description="off, anonymous or individual.")
    delivered: int
    bounced_hard: int
    bounced_soft: int
    complaints: int
    unsubscribed: UnsubscribesOut
    unique_clickers: int = Field(description="Messages a person clicked in, counted once.")
    click_through_rate: float | None = Field(description="unique_clickers / delivered.")
    bounce_rate: float | None
    complaint_rate: float | None
    human_clicks: int
    machine_clicks: int = Field(description="Scanners and prefetchers: never in the rate.")
    opens: OpensOut | None = Field(description="null when the edition had no open pixel.")
    stories: builtins.list[StoryOut] = Field(description="Most human clicks first.")
    hours: builtins.list[HourOut] = Field(description="Clicks in each of the first 48 hours.")

    @classmethod
    def of(cls, report: EditionReport) -> ReportOut:
        opens = report.opens
        return cls(
            edition_id=report.edition_id, list=report.list_slug,
            edition_date=report.edition_date, frequency=report.frequency,
            subject=report.subject, status=report.status,
            send_started_at=report.send_started_at, click_tracking=report.click_tracking,
            delivered=report.delivered, bounced_hard=report.bounced_hard,
            bounced_soft=report.bounced_soft, complaints=report.complaints,
            unsubscribed=UnsubscribesOut(
                link=report.unsubscribed_link, one_click=report.unsubscribed_one_click,
                email=report.unsubscribed_email, total=report.unsubscribed,
            ),
            unique_clickers=report.unique_clickers,
            click_through_rate=report.click_through_rate, bounce_rate=report.bounce_rate,
            complaint_rate=report.complaint_rate, human_clicks=report.human_clicks,
            machine_clicks=report.machine_clicks,
            opens=None if opens is None else OpensOut(
                human=opens.human, machine=opens.machine, unique_openers=opens.unique_openers,
                open_rate=report.open_rate,
            ),
            stories=[StoryOut(**vars(story)) for story in report.stories],
            hours=[HourOut(**vars(hour)) for hour in report.hours],
        )  # fmt: skip


class TrendPointOut(BaseModel):
    edition_id: int
    edition_date: date
    frequency: str
    send_started_at: datetime
    delivered: int = Field(description="Readers: messages delivered.")
    growth: int = Field(
        description="Confirmations and imports onto the list less its unsubscribes, from the "
        "previous edition's send to this one's (the consent log)."
    )
    unsubscribed: int
    unique_clickers: int
    click_through_rate: float | None
    bounce_rate: float | None
    complaint_rate: float | None


class TrendOut(BaseModel):
    list: str = Field(description="The list's slug.")
    name: str
    since_list_began: bool = Field(description="The oldest edition's growth counts from the start.")
    editions: builtins.list[TrendPointOut] = Field(
        description="The last 30 sent editions, newest first."
    )

    @classmethod
    def of(cls, trend: ListTrend) -> TrendOut:
        def point(p: Any) -> TrendPointOut:
            return TrendPointOut(
                **vars(p), click_through_rate=p.click_through_rate, bounce_rate=p.bounce_rate,
                complaint_rate=p.complaint_rate,
            )  # fmt: skip

        return cls(
            list=trend.slug, name=trend.name, since_list_began=trend.since_list_began,
            editions=[point(p) for p in trend.points],
        )  # fmt: skip


def _report(request: Request, edition_id: int) -> EditionReport:
    write_settled_clicks(request)
    report = load_report(request, edition_id)
    if report is None:
        raise HTTPException(404, f"There is no edition {edition_id}.")
    return report


@router.get(
    "/editions/{edition_id}/report",
    response_model=ReportOut,
    responses=NOT_FOUND,
    summary="An edition's report: delivered, returned, unsubscribed, clicks and opens",
)
def edition_report(request: Request, edition_id: EditionId) -> ReportOut:
    return ReportOut.of(_report(request, edition_id))


@router.get(
    "/editions/{edition_id}/report.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND},
    summary="An edition's report as CSV: the summary, then one row per story link",
)
def edition_report_csv(request: Request, edition_id: EditionId) -> Response:
    return csv_download(_report(request, edition_id))


@router.get(
    "/lists/{slug}/trend",
    response_model=TrendOut,
    responses=LIST_NOT_FOUND,
    summary="A list's last 30 sent editions: readers, growth, unsubscribes and rates",
)
def list_trend(request: Request, slug: Slug) -> TrendOut:
    write_settled_clicks(request)
    trend = load_trend(request, slug)
    if trend is None:
        raise HTTPException(404, f"There is no list {slug!r}.")
    return TrendOut.of(trend)
