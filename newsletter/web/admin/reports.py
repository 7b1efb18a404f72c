"""The admin's reports: an edition's (what reached readers, what came back, what they
clicked, with a chart of the first 48 hours and a CSV of it) and a list's trend over its
last editions. Read-only pages; the settled clicks are written before each is shown."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from newsletter.analytics.chart import clicks_chart, describe
from newsletter.analytics.report import CHART_HOURS
from newsletter.web.admin.common import admin_page
from newsletter.web.admin.display import local_time, not_found
from newsletter.web.reporting import (
    NO_CLICKS_YET,
    count,
    csv_download,
    load_report,
    load_trend,
    percent,
    signed,
    write_settled_clicks,
)

router = APIRouter(prefix="/admin", tags=["admin"])

EditionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The edition's ID.")]
Slug = Annotated[str, Path(max_length=64, description="The list's slug.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such edition"}}


@router.get(
    "/editions/{edition_id}/report",
    response_class=HTMLResponse,
    summary="An edition's report: delivered, returned, unsubscribed, clicks and opens",
    responses=NOT_FOUND,
)
def edition_report_page(request: Request, edition_id: EditionId) -> HTMLResponse:
    fresh = write_settled_clicks(request)
    report = load_report(request, edition_id)
    if report is None:
        return not_found(request, f"There is no edition {edition_id}.")
    title = f"Clicks in the first {CHART_HOURS} hours of {report.list_name}, {report.edition_date}"
    return admin_page(
        request, "report.html", report=report, fresh=fresh, no_clicks=NO_CLICKS_YET,
        chart=Markup(clicks_chart(report.hours, title=title)),  # noqa: S704  (escaped inside)
        chart_summary=describe(report.hours), chart_hours=CHART_HOURS,
        count=count, percent=percent, local_time=local_time,
    )  # fmt: skip


@router.get(
    "/editions/{edition_id}/report.csv",
    response_class=Response,
    summary="An edition's report as CSV: the summary, then one row per story link",
    responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND},
)
def edition_report_csv(request: Request, edition_id: EditionId) -> Response:
    write_settled_clicks(request)
    report = load_report(request, edition_id)
    if report is None:
        return not_found(request, f"There is no edition {edition_id}.")
    return csv_download(report)


@router.get(
    "/lists/{slug}/trend",
    response_class=HTMLResponse,
    summary="A list's last 30 editions side by side: readers, growth, clicks, returns",
    responses={404: {"description": "No such list"}},
)
def list_trend_page(request: Request, slug: Slug) -> HTMLResponse:
    write_settled_clicks(request)
    trend = load_trend(request, slug)
    if trend is None:
        return not_found(request, f"There is no list {slug!r}.")
    return admin_page(
        request, "trend.html", trend=trend, count=count, percent=percent, signed=signed,
    )  # fmt: skip
