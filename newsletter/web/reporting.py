"""What the admin's report pages and the editor API's report routes share: fresh numbers
(the settled clicks written first), the reports themselves, and numbers as people read them."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import Response

from newsletter.analytics.export import report_csv
from newsletter.analytics.report import EditionReport, ListTrend, edition_report, list_trend
from newsletter.db import session_scope
from newsletter.inbound.stats import outcomes_of_editions
from newsletter.lists.service import find_list
from newsletter.web.clicks import flush_clicks
from newsletter.web.context import web

log = logging.getLogger(__name__)

NO_CLICKS_YET = "No clicks yet: clicks are counted within a minute or two."


def write_settled_clicks(request: Request) -> bool:
    """Write the clicks that have settled, so a report shows them; False if that failed (the
    report is then shown as the database has it, a minute or two behind)."""
    try:
        flush_clicks(web(request))
    except Exception as error:  # Redis down or slow: the page still shows what is stored
        log.warning("report shown without the latest clicks: %s", error)
        return False
    return True


def load_report(request: Request, edition_id: int) -> EditionReport | None:
    with session_scope(web(request).settings.database_url) as session:
        return edition_report(session, edition_id, outcomes_of=outcomes_of_editions)


def load_trend(request: Request, slug: str) -> ListTrend | None:
    with session_scope(web(request).settings.database_url) as session:
        nl = find_list(session, slug)
        if nl is None:
            return None
        return list_trend(session, nl, outcomes_of=outcomes_of_editions)


def csv_download(report: EditionReport) -> Response:
    name = f"{report.list_slug}-{report.edition_date.isoformat()}-report.csv"
    return Response(
        report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def count(n: int) -> str:
    """``1,234``."""
    return f"{n:,}"


def percent(rate: float | None) -> str:
    """``12.3 %``; two decimals below one per cent (complaint rates live there); "—" when
    there is nothing to take a share of."""
    if rate is None:
        return "—"
    value = rate * 100
    return f"{value:.2f} %" if 0 < value < 1 else f"{value:.1f} %"


def signed(n: int) -> str:
    """``+12``, ``−3``, ``0``: a change."""
    return f"+{n:,}" if n > 0 else (f"−{-n:,}" if n < 0 else "0")
