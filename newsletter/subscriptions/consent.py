"""The consent log: one appended row per act of giving or withdrawing consent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter.models import ClickTracking, ConsentAction, ConsentEvent, NewsletterList


@dataclass(frozen=True)
class Client:
    """Who is acting and through what: stored with every consent event."""

    source: str  # form, api, one-click, link, import, cli
    ip: str = ""
    user_agent: str = ""


def tracking_notice(nl: NewsletterList) -> str:
    """What a reader is told before joining a list that stores each reader's clicks; "" for
    any other list. Shown beside the list where readers choose it, and kept, word for word,
    in the consent log of their signup."""
    if nl.click_tracking != ClickTracking.INDIVIDUAL:
        return ""
    opens = ", and when you open them" if nl.track_opens else ""
    return (
        f"{nl.name} records which links you click in its emails{opens}, to learn what readers read."
    )


def with_notices(wording: str, lists: list[NewsletterList]) -> str:
    """``wording`` and the tracking notice of each of ``lists`` that has one."""
    return " ".join(filter(None, [wording, *map(tracking_notice, lists)]))


def record(
    session: Session,
    action: ConsentAction,
    *,
    email: str,
    subscriber_id: int | None,
    list_id: int | None,
    client: Client,
    now: datetime,
    wording: str = "",
    detail: str = "",
) -> None:
    session.add(
        ConsentEvent(
            subscriber_id=subscriber_id,
            email=email,
            list_id=list_id,
            action=action,
            source=client.source[:32],
            ip=client.ip[:64],
            user_agent=client.user_agent[:500],
            wording=wording,
            detail=detail,
            created_at=now,
        )
    )


def anonymise(session: Session, subscriber_id: int, email: str) -> None:
    """Keep a reader's consent history but not their address, when they erase their data."""
    digest = "sha256:" + hashlib.sha256(email.lower().encode()).hexdigest()
    session.execute(
        update(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .values(email=digest, subscriber_id=None, ip="", user_agent="")
        .execution_options(synchronize_session=False)
    )
