"""Who may use the admin pages and the editor API.

Admin pages: a signed session cookie (Starlette's SessionMiddleware, keyed by the secret
key) holding the secret of a server-side session row (``EditorSession``: fixed lifetime from
sign-in, ended by sign-out, a password change or deactivation) and a CSRF token that every
form posts back. The editor API: ``Authorization: Bearer nlt_...``.

Unauthenticated, an admin page redirects to the login page (303) and an API route answers
401 (403 for a deactivated editor's token); a form posted without its CSRF token gets 403.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from newsletter.db import session_scope
from newsletter.editors.service import (
    EditorDeactivated,
    editor_for_session,
    editor_for_token,
    end_session,
    start_session,
)
from newsletter.models import Editor
from newsletter.web.context import now, web

SESSION_COOKIE = "nl_admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
ADMIN_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "script-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class LoginRequired(Exception):
    """An admin page was asked for without a signed-in editor: send them to log in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def login_url(next_path: str = "/admin") -> str:
    return f"/admin/login?next={quote(next_path, safe='/')}"


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use (the login form gets one too)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def sign_in(request: Request, session: Session, editor: Editor) -> None:
    """A fresh session for ``editor``, in the database and the cookie: a new session secret
    and a new CSRF token, so nothing seen before login is of use after it."""
    lifetime = timedelta(hours=web(request).settings.editor_session_hours)
    secret = start_session(session, editor, now=now(request), lifetime=lifetime)
    request.session.clear()
    request.session["session"] = secret
    csrf_token(request)


def sign_out(request: Request) -> None:
    """End this browser's session server-side, so a copy of its cookie is worthless too."""
    secret = request.session.get("session")
    if isinstance(secret, str):
        with session_scope(web(request).settings.database_url) as session:
            end_session(session, secret, now=now(request))
    request.session.clear()


def session_editor(request: Request) -> Editor | None:
    """The editor signed in with this request's session cookie, if still valid."""
    secret = request.session.get("session")
    if not isinstance(secret, str):
        return None
    with session_scope(web(request).settings.database_url) as session:
        editor = editor_for_session(session, secret, now=now(request))
        if editor is None:
            # Ended or expired: the cookie forgets it (the CSRF token stays for the login form).
            request.session.pop("session", None)
            return None
        session.expunge(editor)
        return editor


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose CSRF token is not this session's (403)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    expected = request.session.get("csrf")
    if not sent or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(
            403,
            "This form has expired or did not come from this site (missing or wrong CSRF "
            "token). Go back, reload the page and try again.",
        )


def require_editor(request: Request) -> Editor:
    """Dependency of every admin page: the signed-in editor, or off to the login page."""
    editor = session_editor(request)
    if editor is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else "/admin")
    request.state.editor = editor
    return editor


_bearer = HTTPBearer(auto_error=False, description="An editor API token: nlt_...")


def require_api_editor(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> Editor:
    """Dependency of every editor API route: the editor a bearer token acts for, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "This needs an editor API token: Authorization: Bearer nlt_... "
            "(create one with `newsletter editors token EMAIL`).",
            headers={"www-authenticate": "Bearer"},
        )
    with session_scope(web(request).settings.database_url) as session:
        try:
            editor = editor_for_token(session, credentials.credentials, now=now(request))
        except EditorDeactivated as error:
            raise HTTPException(403, str(error)) from None
        if editor is None:
            raise HTTPException(
                401,
                "This API token is unknown or was revoked.",
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            )
        session.expunge(editor)
    request.state.editor = editor
    return editor
