"""Emails to one reader about their subscription: the double opt-in request and welcome.

Rendered through the same pipeline as digests (templates/email/confirm/, welcome/). Nothing
a visitor typed appears in them, so a signup form cannot be used to mail strangers text.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.mime import build_message
from newsletter.delivery.transports import Transport
from newsletter.delivery.verp import NOTICE, ReturnPath, Tag
from newsletter.models import NewsletterList, Subscriber, SubscriberStatus
from newsletter.rendering.render import render_email
from newsletter.subscriptions.tokens import (
    PREFERENCES,
    UNSUBSCRIBE,
    make_confirm_token,
    make_token,
)


@dataclass(frozen=True)
class Notice:
    sender: str
    recipient: str
    data: bytes


def _names(lists: list[NewsletterList]) -> str:
    names = [nl.name for nl in lists]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _notice(
    kind: str,
    subscriber: Subscriber,
    lists: list[NewsletterList],
    context: Mapping[str, object],
    settings: Settings,
    now: datetime,
) -> Notice:
    sender = lists[0]
    email = render_email(
        kind,
        {
            "language": sender.language,
            "list_name": sender.name,
            "list_names": _names(lists),
            "date_long": "",
            "site_name": settings.site_name,
            "site_url": settings.site_url,
            "postal_address": settings.postal_address,
            **context,
        },
    )
    message_id = f"<{kind}.{subscriber.id}.{secrets.token_hex(8)}@{settings.message_domain}>"
    data = build_message(
        from_name=sender.from_name,
        from_address=sender.from_address,
        to=subscriber.email,
        subject=email.subject,
        date=now,
        message_id=message_id,
        text=email.text,
        html=email.html,
        headers={"Auto-Submitted": "auto-generated"},
    )
    return Notice(
        _envelope_sender(sender.from_address, subscriber.id, settings), subscriber.email, data
    )


def _envelope_sender(from_address: str, subscriber_id: int, settings: Settings) -> str:
    """A notice's own VERP tag: a confirmation that bounces says the address is dead."""
    return_path = ReturnPath.parse(settings.bounce_address, settings.secret_key)
    if return_path is None:
        return from_address
    return return_path.address(Tag(NOTICE, subscriber_id))


def _load(
    session: Session, subscriber_id: int, list_ids: list[int]
) -> tuple[Subscriber, list[NewsletterList]] | None:
    """The reader and lists a notice is about; None when there is nobody to mail: the reader
    erased their data, or was blocked (their address bounced or complained) since it was
    queued."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is not None and subscriber.status == SubscriberStatus.BLOCKED:
        return None
    lists = list(
        session.scalars(
            select(NewsletterList)
            .where(NewsletterList.id.in_(list_ids))
            .order_by(NewsletterList.id)
        )
    )
    return (subscriber, lists) if subscriber is not None and lists else None


def confirmation(
    session: Session, subscriber_id: int, list_ids: list[int], *, settings: Settings, now: datetime
) -> Notice | None:
    loaded = _load(session, subscriber_id, list_ids)
    if loaded is None:
        return None
    subscriber, lists = loaded
    token = make_confirm_token(
        settings.secret_key, subscriber.id, [nl.id for nl in lists], subscriber.token_key, now=now
    )
    context = {
        "confirm_url": f"{settings.base_url.rstrip('/')}/confirm/{token}",
        "expires_hours": settings.confirm_token_max_age_hours,
    }
    return _notice("confirm", subscriber, lists, context, settings, now)


def welcome(
    session: Session, subscriber_id: int, list_ids: list[int], *, settings: Settings, now: datetime
) -> Notice | None:
    loaded = _load(session, subscriber_id, list_ids)
    if loaded is None:
        return None
    subscriber, lists = loaded
    base = settings.base_url.rstrip("/")
    first = lists[0].id
    context = {
        "email": subscriber.email,
        "preferences_url": f"{base}/preferences/"
        + make_token(settings.secret_key, PREFERENCES, subscriber.id, first, subscriber.token_key),
        "unsubscribe_url": f"{base}/unsubscribe/"
        + make_token(settings.secret_key, UNSUBSCRIBE, subscriber.id, first, subscriber.token_key),
    }
    return _notice("welcome", subscriber, lists, context, settings, now)


def send(notice: Notice, transport: Transport) -> None:
    with transport:
        transport.send(notice.sender, notice.recipient, notice.data)
