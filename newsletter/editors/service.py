"""Editor accounts: passwords (argon2id), admin sessions and API tokens.

Of a session or a token only the SHA-256 of its secret is stored. A session lasts a fixed
time from sign-in; signing out, a password change or deactivation ends it at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.db import affected_rows
from newsletter.models import ApiToken, Editor, EditorSession

MIN_PASSWORD = 12
TOKEN_PREFIX = "nlt_"  # noqa: S105  (marks our tokens in logs and secret scanners)
_hasher = PasswordHasher()
# Verified against when the address is unknown, so a wrong address takes as long as a wrong
# password and logins cannot probe which editors exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class EditorError(ValueError):
    """An account request that cannot be met; the message says why."""


class EditorDeactivated(EditorError):
    """The right credentials of an editor who was deactivated."""

    def __init__(self, email: str) -> None:
        super().__init__(
            f"The editor account {email} has been deactivated. "
            "An operator can tell you why, and create a new account if needed."
        )


def _normalise(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise EditorError(f"{email!r} is not an email address: {error}") from None


def login_name(email: str) -> str:
    """The account a login form names, as sign-in looks it up (throttles key on this)."""
    try:
        return _normalise(email)
    except EditorError:
        return email.strip().lower()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise EditorError(f"The password must be at least {MIN_PASSWORD} characters long.")


def create_editor(session: Session, email: str, password: str, *, name: str = "") -> Editor:
    _check_password(password)
    editor = Editor(
        email=_normalise(email), name=name.strip(), password_hash=_hasher.hash(password)
    )
    try:
        with session.begin_nested():
            session.add(editor)
    except IntegrityError:
        raise EditorError(f"An editor {editor.email} already exists.") from None
    return editor


def set_password(session: Session, editor: Editor, password: str, *, now: datetime) -> None:
    """Change the password and sign the editor out everywhere."""
    _check_password(password)
    editor.password_hash = _hasher.hash(password)
    end_sessions(session, editor, now=now)


def authenticate(session: Session, email: str, password: str, *, now: datetime) -> Editor | None:
    """The active editor with this address and password, else None (same time either way).

    Raises EditorDeactivated for the right password of a deactivated editor: only someone
    who knows it learns that.
    """
    try:
        key = _normalise(email)
    except EditorError:
        key = ""
    editor = session.scalar(select(Editor).where(Editor.email == key)) if key else None
    try:
        _hasher.verify(editor.password_hash if editor else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if editor is None:
        return None
    if not editor.is_active:
        raise EditorDeactivated(editor.email)
    if _hasher.check_needs_rehash(editor.password_hash):
        editor.password_hash = _hasher.hash(password)
    editor.last_login_at = now
    return editor


def find_editor(session: Session, email: str) -> Editor:
    editor = session.scalar(select(Editor).where(Editor.email == _normalise(email)))
    if editor is None:
        raise EditorError(f"There is no editor {email}.")
    return editor


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, editor: Editor, name: str) -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(editor=editor, name=name.strip() or "token", prefix=secret[:12],
                     token_hash=_digest(secret))  # fmt: skip
    session.add(token)
    session.flush()
    return IssuedToken(token, secret)


def editor_for_token(session: Session, secret: str, *, now: datetime) -> Editor | None:
    """The active editor a bearer token acts for, or None if unknown or revoked.

    Raises EditorDeactivated for a token of a deactivated editor.
    """
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None:
        return None
    if not token.editor.is_active:
        raise EditorDeactivated(token.editor.email)
    if token.revoked_at is not None:
        return None
    token.last_used_at = now
    return token.editor


def revoke_token(session: Session, token_id: int, *, now: datetime) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise EditorError(f"There is no API token {token_id}.")
    token.revoked_at = token.revoked_at or now
    return token


def start_session(session: Session, editor: Editor, *, now: datetime, lifetime: timedelta) -> str:
    """A new admin session for ``editor``, ending ``lifetime`` after ``now``: its secret,
    for the cookie. Never extended: signing in again is the only way to a new one."""
    secret = secrets.token_urlsafe(32)
    session.add(EditorSession(editor=editor, secret_hash=_digest(secret), created_at=now,
                              expires_at=now + lifetime))  # fmt: skip
    session.flush()
    return secret


def editor_for_session(session: Session, secret: str, *, now: datetime) -> Editor | None:
    """The active editor of an admin session, or None if it is unknown, ended or expired."""
    if len(secret) > 200:
        return None
    row = session.scalar(select(EditorSession).where(EditorSession.secret_hash == _digest(secret)))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    return row.editor if row.editor.is_active else None


def end_session(session: Session, secret: str, *, now: datetime) -> None:
    """Sign one browser out: its cookie, or any copy of it, is worthless from now on."""
    session.execute(
        update(EditorSession)
        .where(EditorSession.secret_hash == _digest(secret), EditorSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def end_sessions(session: Session, editor: Editor, *, now: datetime) -> int:
    """Sign ``editor`` out of every browser; how many live sessions that ended."""
    ended = session.execute(
        update(EditorSession)
        .where(EditorSession.editor_id == editor.id, EditorSession.ended_at.is_(None),
               EditorSession.expires_at > now)
        .values(ended_at=now)
    )  # fmt: skip
    return affected_rows(ended)


@dataclass(frozen=True)
class Deactivation:
    editor: Editor
    sessions_ended: int
    tokens_revoked: int


def deactivate_editor(session: Session, editor: Editor, *, now: datetime) -> Deactivation:
    """Lock ``editor`` out: no sign-in, every session ended, every API token revoked."""
    editor.is_active = False
    sessions_ended = end_sessions(session, editor, now=now)
    revoked = session.execute(
        update(ApiToken)
        .where(ApiToken.editor_id == editor.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.flush()
    return Deactivation(editor, sessions_ended, affected_rows(revoked))
