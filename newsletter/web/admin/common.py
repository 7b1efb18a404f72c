"""What every admin page shares: its template context and its security headers."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from newsletter.web.auth import ADMIN_CSP, csrf_token
from newsletter.web.context import render

PAGE_SIZE = 50
Status = TypeVar("Status", bound=enum.StrEnum)


def admin_page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render ``templates/web/admin/<template>`` with the editor, CSRF token and flash."""
    flash = request.session.pop("flash", None)
    return _admin_html(request, template, status_code=status_code, flash=flash, **context)


def admin_part(request: Request, template: str, **context: Any) -> HTMLResponse:
    """Render parts of a page for its script to fetch, as :func:`admin_page` does, but leave
    the flash in the session for the page it was meant for."""
    return _admin_html(request, template, status_code=200, flash=None, **context)


def _admin_html(
    request: Request, template: str, *, status_code: int, flash: str | None, **context: Any
) -> HTMLResponse:
    response = render(
        request, f"admin/{template}", status_code=status_code,
        editor=getattr(request.state, "editor", None), csrf=csrf_token(request),
        flash=flash, **context,
    )  # fmt: skip
    response.headers["content-security-policy"] = ADMIN_CSP
    response.headers["cache-control"] = "no-store"
    return response


def back(request: Request, path: str, flash: str | None = None) -> RedirectResponse:
    """After a form: see the result on a page (303), with a one-time message."""
    if flash:
        request.session["flash"] = flash
    return RedirectResponse(path, status_code=303)


class BadFilter(Exception):
    """A list page's filter names no such value: answer with :attr:`response`."""

    def __init__(self, response: HTMLResponse) -> None:
        self.response = response


def chosen_status(request: Request, value: str, statuses: type[Status]) -> Status | None:
    """The status a list page's filter chose (None: any); raises :class:`BadFilter` for one
    that is not among ``statuses``. The form's "any status" sends an empty value, so the
    enum is checked here rather than by the query's type."""
    names = [s.value for s in statuses]
    if not value:
        return None
    if value not in names:
        raise BadFilter(
            admin_page(
                request,
                "message.html",
                status_code=400,
                heading="That did not work",
                paragraphs=[f"status: {value!r} is not one of {', '.join(names)}."],
            )
        )
    return statuses(value)
