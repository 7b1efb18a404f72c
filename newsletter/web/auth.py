"""Who may use the admin pages and the editor API.

Admin pages: a signed session cookie (Starlette's SessionMiddleware, keyed by the secret
key) holding the editor's ID, their session epoch (raised to sign them out everywhere) and a
CSRF token that every form posts back. The editor API: ``Authorization: Bearer nlt_...``.

Unauthenticated, an admin page redirects to the login page (303) and an API route answers
401; a form posted without its CSRF token gets 403.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from newsletter.db import session_scope
from newsletter.editors.service import editor_for_token
from newsletter.models import Editor
from newsletter.web.context import now, web

SESSION_COOKIE = "nl_admin"
SESSION_MAX_AGE_S = 12 * 60 * 60
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


def sign_in(request: Request, editor: Editor) -> None:
    """A fresh session for ``editor``: a new CSRF token, so one seen before login is useless."""
    request.session.clear()
    request.session.update({"editor": editor.id, "epoch": editor.session_epoch})
    csrf_token(request)


def sign_out(request: Request) -> None:
    request.session.clear()


def session_editor(request: Request) -> Editor | None:
    """The editor signed in with this request's session cookie, if still valid."""
    editor_id, epoch = request.session.get("editor"), request.session.get("epoch")
    if not isinstance(editor_id, int):
        return None
    with session_scope(web(request).settings.database_url) as session:
        editor = session.get(Editor, editor_id)
        if editor is None or not editor.is_active or editor.session_epoch != epoch:
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
        editor = editor_for_token(session, credentials.credentials, now=now(request))
        if editor is None:
            raise HTTPException(
                401,
                "This API token is unknown or was revoked.",
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            )
        session.expunge(editor)
    request.state.editor = editor
    return editor
