"""Readers joining and leaving lists."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import (
    ConsentAction,
    Frequency,
    NewsletterList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.models.subscriber import email_key
from newsletter.subscriptions import consent
from newsletter.subscriptions.addresses import InvalidAddress, normalise_address
from newsletter.subscriptions.consent import Client


@dataclass(frozen=True)
class Signup:
    email: str
    name: str = ""


@dataclass
class ImportReport:
    added: int = 0
    already: int = 0
    left: int = 0  # unsubscribed earlier: not re-added
    errors: list[str] = field(default_factory=list)


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email_key == email_key(email)))


def subscribe(
    session: Session,
    nl: NewsletterList,
    signup: Signup,
    *,
    now: datetime,
    confirmed: bool,
    source: str,
    frequency: Frequency = Frequency.DAILY,
) -> tuple[Subscription, bool]:
    """Subscribe an address to a list; returns the subscription and whether it is new.

    ``confirmed`` is for imports of readers who already opted in elsewhere; the web form
    leaves it false until the reader confirms. A reader who unsubscribed is never brought
    back by an operator: only they can rejoin.
    """
    email = normalise_address(signup.email)
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        subscriber = Subscriber(email=email, name=signup.name.strip()[:200])
        session.add(subscriber)
        session.flush()
    subscription = session.scalar(
        select(Subscription).where(
            Subscription.subscriber_id == subscriber.id, Subscription.list_id == nl.id
        )
    )
    created = subscription is None
    if subscription is None:
        subscription = Subscription(
            subscriber=subscriber, newsletter_list=nl, source=source, frequency=frequency,
            status=SubscriptionStatus.PENDING,
        )  # fmt: skip
        session.add(subscription)
    if confirmed and subscription.status == SubscriptionStatus.PENDING:
        subscription.status = SubscriptionStatus.CONFIRMED
        subscription.confirmed_at = now
        session.flush()
        consent.record(
            session, ConsentAction.IMPORT, email=subscriber.email, subscriber_id=subscriber.id,
            list_id=nl.id, client=Client(source=source), now=now,
            wording="Added by an operator, with consent given elsewhere",
        )  # fmt: skip
    session.flush()
    return subscription, created


def parse_subscriber_csv(content: str) -> tuple[list[Signup], list[str]]:
    """Rows of a CSV with an ``email`` column (``name`` optional), or one address per line.

    Every row is checked before anything is stored, so a bad row never leaves half a file. A
    first line with neither an address nor an ``email`` column is a header that lacks it.
    """
    reader = csv.reader(io.StringIO(content))
    # Keep each row's line number in the file, for error messages, before skipping blanks.
    rows = [(reader.line_num, row) for row in reader]
    rows = [(number, row) for number, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return [], ["the file holds no addresses"]
    columns = [cell.strip() for cell in rows[0][1]]
    header = [column.lower() for column in columns]
    if "email" in header:
        email_at = header.index("email")
        name_at = header.index("name") if "name" in header else None
        body = rows[1:]
    elif not any("@" in cell for cell in columns):
        return [], [f"the CSV has no 'email' column; its columns are: {', '.join(columns)}"]
    else:
        email_at, name_at, body = 0, 1 if len(rows[0][1]) > 1 else None, rows
    signups, errors = [], []
    for number, row in body:
        raw = row[email_at] if email_at < len(row) else ""
        try:
            email = normalise_address(raw)
        except InvalidAddress as error:
            errors.append(f"line {number}: {error}")
            continue
        name = row[name_at].strip() if name_at is not None and name_at < len(row) else ""
        signups.append(Signup(email=email, name=name))
    return signups, errors


def import_subscribers(
    session: Session, nl: NewsletterList, signups: Iterable[Signup], *, now: datetime, source: str
) -> ImportReport:
    report = ImportReport()
    for signup in signups:
        subscription, created = subscribe(
            session, nl, signup, now=now, confirmed=True, source=source
        )
        if created:
            report.added += 1
        elif subscription.status == SubscriptionStatus.UNSUBSCRIBED:
            report.left += 1
        else:
            report.already += 1
    return report
