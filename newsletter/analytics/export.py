"""An edition's report as CSV, for a spreadsheet: a summary (one metric a row), a blank
line, then one row per story link, most human clicks first.

Titles come from feeds, so any text that a spreadsheet would read as a formula (it starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading
apostrophe: shown as typed, never run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from newsletter.analytics.report import EditionReport

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
STORY_HEADER = ("Rank", "Position in email", "Story", "URL", "Human clicks", "Machine clicks")

Cell = str | int | float


def safe_cell(value: Cell) -> Cell:
    """``value`` as a spreadsheet will show it, not run it."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _percent(rate: float | None) -> Cell:
    return "" if rate is None else round(rate * 100, 2)


def summary_rows(report: EditionReport) -> list[tuple[str, Cell]]:
    rows: list[tuple[str, Cell]] = [
        ("List", report.list_name),
        ("Edition date", report.edition_date.isoformat()),
        ("Frequency", report.frequency),
        ("Subject", report.subject),
        (
            "Started sending (UTC)",
            report.send_started_at.isoformat() if report.send_started_at else "",
        ),
        ("Delivered", report.delivered),
        ("Bounced (hard)", report.bounced_hard),
        ("Bounced (soft)", report.bounced_soft),
        ("Complaints", report.complaints),
        ("Unsubscribed by the link", report.unsubscribed_link),
        ("Unsubscribed by one-click", report.unsubscribed_one_click),
        ("Unsubscribed by email", report.unsubscribed_email),
        ("Unique human clickers", report.unique_clickers),
        ("Click-through rate (%)", _percent(report.click_through_rate)),
        ("Human clicks", report.human_clicks),
        ("Machine clicks (not in the click-through rate)", report.machine_clicks),
    ]
    if report.opens is not None:
        rows += [
            ("Human opens (an estimate)", report.opens.human),
            ("Machine opens (Apple Mail Privacy Protection and proxies)", report.opens.machine),
            ("Unique openers (an estimate)", report.opens.unique_openers),
            ("Open rate (%, an estimate)", _percent(report.open_rate)),
        ]
    return rows


def report_csv(report: EditionReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def write(rows: Iterable[Iterable[Cell]]) -> None:
        writer.writerows([safe_cell(cell) for cell in row] for row in rows)

    write([("Metric", "Value"), *summary_rows(report), ()])
    write([STORY_HEADER])
    write(
        (rank, story.position, story.title, story.url, story.human_clicks, story.machine_clicks)
        for rank, story in enumerate(report.stories, start=1)
    )
    return out.getvalue()
