from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
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
    is_active: Mapped[bool] = mapped_column(default=True)
    # Raised to sign out every session of this editor (password change, "log out everywhere").
    session_epoch: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="editor")


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
