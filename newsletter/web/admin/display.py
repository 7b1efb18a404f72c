"""How the admin pages show things: times in a list's own timezone, pages of a long table,
and the page for something that does not exist."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from newsletter.lists.schedule import zone
from newsletter.web.admin.common import PAGE_SIZE, admin_page


def local_time(moment: datetime | None, timezone: str) -> str:
    """``Fri 16 May 2025 08:00 BST``: what the editor's readers see on their clocks."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone(timezone))
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


def clock_time(moment: datetime | None, timezone: str, now: datetime) -> str:
    """``08:00 BST`` for a moment of today on the list's clock; another day's in full."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone(timezone))
    if local.date() != now.astimezone(zone(timezone)).date():
        return local_time(moment, timezone)
    return f"{local:%H:%M} {local.tzname()}"


@dataclass(frozen=True)
class Pager:
    """One page of a table of ``total`` rows, and the links to its neighbours."""

    page: int
    total: int
    path: str
    query: tuple[tuple[str, str], ...] = ()
    size: int = PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def previous_url(self) -> str | None:
        return self._url(self.page - 1) if self.page > 1 else None

    @property
    def next_url(self) -> str | None:
        return self._url(self.page + 1) if self.page < self.pages else None

    def _url(self, page: int) -> str:
        # Empty filters stay out of the address, so links read like what the editor typed.
        query = [(name, value) for name, value in self.query if value]
        return f"{self.path}?{urlencode([*query, ('page', str(page))])}"


def not_found(request: Request, text: str) -> HTMLResponse:
    return admin_page(
        request, "message.html", status_code=404, heading="Not found", paragraphs=[text]
    )
