"""Signing in and out of the admin.

Every attempt passes the login throttle first (per account and per IP); a wrong password and
an unknown address get the same 400 and words, so the form never says who has an account.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db import session_scope
from newsletter.editors.service import EditorDeactivated, authenticate, login_name
from newsletter.web.admin.common import admin_page, back
from newsletter.web.auth import check_csrf, session_editor, sign_in, sign_out
from newsletter.web.context import now, web
from newsletter.web.ratelimit import RateLimited

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin", tags=["admin"])

WRONG = "That email address and password do not match an editor account."


def _safe_next(next_path: str) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if next_path.startswith("/admin") and not next_path.startswith("//"):
        return next_path
    return "/admin"


@router.get("/login", response_class=HTMLResponse, summary="Editor login page")
def login_page(
    request: Request, next: Annotated[str, Query(max_length=500)] = "/admin"
) -> Response:
    if session_editor(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return admin_page(request, "login.html", next=_safe_next(next), email="", error=None)


@router.post(
    "/login",
    response_class=HTMLResponse,
    summary="Sign in with email and password",
    dependencies=[Depends(check_csrf)],
)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=500)],
    next: Annotated[str, Form(max_length=500)] = "/admin",
) -> Response:
    state, account = web(request), login_name(email)
    ip = request.client.host if request.client else ""
    again = {"next": _safe_next(next), "email": email}
    try:
        state.login_throttle.attempt(account, ip)
    except RateLimited as error:
        log.warning("editor sign-in throttled: client %s", ip)
        page = admin_page(request, "login.html", status_code=429, error=str(error), **again)
        page.headers["retry-after"] = str(error.retry_after)
        return page
    with session_scope(state.settings.database_url) as session:
        try:
            editor = authenticate(session, email, password, now=now(request))
        except EditorDeactivated as error:
            return admin_page(request, "login.html", status_code=403, error=str(error), **again)
        if editor is not None:
            sign_in(request, session, editor)
            state.login_throttle.succeeded(account)
            return RedirectResponse(_safe_next(next), status_code=303)
    return admin_page(request, "login.html", status_code=400, error=WRONG, **again)


@router.post(
    "/logout", summary="Sign out", dependencies=[Depends(check_csrf)], response_class=HTMLResponse
)
def logout(request: Request) -> Response:
    sign_out(request)
    return back(request, "/admin/login", "You are signed out.")
