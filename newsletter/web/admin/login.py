"""Signing in and out of the admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db import session_scope
from newsletter.editors.service import authenticate
from newsletter.web.admin.common import admin_page, back
from newsletter.web.auth import check_csrf, session_editor, sign_in, sign_out
from newsletter.web.context import now, web

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
    with session_scope(web(request).settings.database_url) as session:
        editor = authenticate(session, email, password, now=now(request))
        if editor is not None:
            sign_in(request, editor)
            return RedirectResponse(_safe_next(next), status_code=303)
    return admin_page(
        request, "login.html", status_code=400, next=_safe_next(next), email=email, error=WRONG
    )


@router.post(
    "/logout", summary="Sign out", dependencies=[Depends(check_csrf)], response_class=HTMLResponse
)
def logout(request: Request) -> Response:
    sign_out(request)
    return back(request, "/admin/login", "You are signed out.")
