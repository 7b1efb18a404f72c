"""What every admin page shares: its template context and its security headers."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from newsletter.web.auth import ADMIN_CSP, csrf_token
from newsletter.web.context import render

PAGE_SIZE = 50


def admin_page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render ``templates/web/admin/<template>`` with the editor, CSRF token and flash."""
    flash = request.session.pop("flash", None)
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
