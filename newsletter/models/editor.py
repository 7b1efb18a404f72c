from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.db import Base
from newsletter.models.types import UTCDateTime, utcnow


class Editor(Base):
    """A person who runs the newsletter from /admin or the editor API."""

    __tablename__ = "editors"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Lower-cased: the login name.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # argon2id, in its own self-describing format.
    password_hash: Mapped[str] = mapped_column(String(200))
    # False once deactivated: no sign-in, no API, every session and token ended.
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="editor")
    sessions: Mapped[list[EditorSession]] = relationship(back_populates="editor")


class EditorSession(Base):
    """One signed-in browser. The cookie carries a random secret; only its SHA-256 is kept.

    A session ends at ``expires_at`` (fixed at sign-in, never extended) or when ``ended_at``
    is set: sign-out, a password change, deactivation. A copied cookie dies with its row.
    """

    __tablename__ = "editor_sessions"
    __table_args__ = (Index("ix_editor_sessions_editor_id", "editor_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    editor: Mapped[Editor] = relationship(back_populates="sessions")


class ApiToken(Base):
    """A bearer token for the CMS or a script, acting as its editor. Only a hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # The token's public first characters, shown in lists so a leaked one can be found.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    editor: Mapped[Editor] = relationship(back_populates="tokens")
