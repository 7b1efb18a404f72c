"""Editor accounts: passwords (argon2id) and API tokens (only their SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import ApiToken, Editor

MIN_PASSWORD = 12
TOKEN_PREFIX = "nlt_"  # noqa: S105  (marks our tokens in logs and secret scanners)
_hasher = PasswordHasher()
# Verified against when the address is unknown, so a wrong address takes as long as a wrong
# password and logins cannot probe which editors exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class EditorError(ValueError):
    """An account request that cannot be met; the message says why."""


def _normalise(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise EditorError(f"{email!r} is not an email address: {error}") from None


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


def set_password(editor: Editor, password: str) -> None:
    """Change the password and sign the editor out everywhere."""
    _check_password(password)
    editor.password_hash = _hasher.hash(password)
    editor.session_epoch += 1


def authenticate(session: Session, email: str, password: str, *, now: datetime) -> Editor | None:
    """The active editor with this address and password, else None (same time either way)."""
    try:
        key = _normalise(email)
    except EditorError:
        key = ""
    editor = session.scalar(select(Editor).where(Editor.email == key)) if key else None
    try:
        _hasher.verify(editor.password_hash if editor else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if editor is None or not editor.is_active:
        return None
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
    """The active editor a bearer token acts for, or None if unknown or revoked."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None or token.revoked_at is not None or not token.editor.is_active:
        return None
    token.last_used_at = now
    return token.editor


def revoke_token(session: Session, token_id: int, *, now: datetime) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise EditorError(f"There is no API token {token_id}.")
    token.revoked_at = token.revoked_at or now
    return token
