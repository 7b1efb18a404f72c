from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import track
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from newsletter.cli.common import CommandError, console, errors, print_json, settings, utcnow
from newsletter.db import session_scope
from newsletter.inbound import policy, stats
from newsletter.lists.service import get_list
from newsletter.models import Subscriber, SubscriberStatus, Subscription, SubscriptionStatus
from newsletter.subscriptions.readers import purge_expired_signups
from newsletter.subscriptions.service import (
    Signup,
    find_subscriber,
    import_subscribers,
    parse_subscriber_csv,
    subscribe,
)

app = typer.Typer(help="Readers: add, import and list; see and lift blocks.", no_args_is_help=True)

ListOption = Annotated[str, typer.Option("--list", "-l", help="List slug.")]


@app.command()
def add(
    email: Annotated[str, typer.Argument(help="The reader's address.")],
    list_slug: ListOption,
    name: Annotated[str, typer.Option(help="The reader's name.")] = "",
    pending: Annotated[
        bool, typer.Option(help="Leave unconfirmed (awaiting double opt-in).")
    ] = False,
) -> None:
    """Subscribe one reader (confirmed: use only with consent given elsewhere)."""
    with session_scope() as session:
        nl = get_list(session, list_slug)
        assert nl is not None
        subscription, created = subscribe(
            session, nl, Signup(email, name), now=utcnow(), confirmed=not pending, source="cli"
        )
        state = "subscribed" if created else "already on the list"
        console.print(f"{subscription.subscriber.email}: {state} ({subscription.status.value}).")


@app.command("import")
def import_(
    csv_file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="CSV with an email column (name optional)."
        ),
    ],
    list_slug: ListOption,
) -> None:
    """Import readers from CSV, confirmed. Any invalid row stops the import before a write."""
    content = csv_file.read_bytes()
    if len(content) > settings().max_import_bytes:
        raise CommandError(f"{csv_file} is larger than the import limit")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CommandError(f"{csv_file} is not UTF-8 text: {error}") from None
    signups, problems = parse_subscriber_csv(text)
    if problems:
        for problem in problems:
            errors.print(f"[red]{escape(str(csv_file))}[/] {escape(problem)}")
        raise CommandError(
            f"nothing imported: fix the {len(problems)} problem(s) above and run again"
        )
    with session_scope() as session:
        nl = get_list(session, list_slug)
        assert nl is not None
        report = import_subscribers(
            session, nl, track(signups, description="Importing readers", console=console),
            now=utcnow(), source="import",
        )  # fmt: skip
    console.print(
        f"Imported {len(signups)} readers into {list_slug}: {report.added} new, "
        f"{report.already} already there"
        + (f", {report.left} not re-added because they unsubscribed." if report.left else ".")
    )


@app.command("list")
def list_(
    list_slug: Annotated[str | None, typer.Option("--list", "-l", help="Only this list.")] = None,
    status: Annotated[
        SubscriptionStatus | None, typer.Option(help="Only this subscription status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Readers per page.")] = 50,
    page: Annotated[int, typer.Option(min=1)] = 1,
    format: Annotated[str, typer.Option(help="table or json")] = "table",
) -> None:
    """List readers with their status and lists."""
    with session_scope() as session:
        query = select(Subscriber)
        if list_slug or status:
            query = query.join(Subscription)
            if list_slug:
                nl = get_list(session, list_slug)
                assert nl is not None
                query = query.where(Subscription.list_id == nl.id)
            if status:
                query = query.where(Subscription.status == status)
            query = query.distinct()
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        readers = session.scalars(
            query.options(selectinload(Subscriber.subscriptions).selectinload(Subscription.newsletter_list))
            .order_by(Subscriber.id).limit(limit).offset((page - 1) * limit)
        ).all()  # fmt: skip
        rows: list[dict[str, Any]] = [
            {
                "email": r.email,
                "name": r.name,
                "status": r.status.value,
                "lists": {s.newsletter_list.slug: s.status.value for s in r.subscriptions},
            }
            for r in readers
        ]
        why_blocked = {
            r.email: r.blocked_reason for r in readers if r.status == SubscriberStatus.BLOCKED
        }
    if format == "json":
        print_json(rows)
        return
    table = Table(
        "Email", "Name", "Status", "Lists", title=f"Readers (page {page}, {total} in all)"
    )
    for row in rows:
        lists = ", ".join(f"{slug} ({state})" for slug, state in row["lists"].items())
        shown = row["status"]
        if row["email"] in why_blocked:
            shown = f"{shown}: {why_blocked[row['email']] or 'no reason recorded'}"
        table.add_row(row["email"], row["name"], shown, lists)
    console.print(table)


@app.command("purge-pending")
def purge_pending(
    days: Annotated[
        int | None, typer.Option(min=1, help="Age in days (default: the setting).")
    ] = None,
) -> None:
    """Delete signups never confirmed, and readers left with no subscription."""
    config = settings()
    ttl = timedelta(days=days or config.pending_signup_ttl_days)
    with session_scope() as session:
        purged = purge_expired_signups(session, now=utcnow(), ttl=ttl)
    console.print(f"Purged {purged} unconfirmed signups older than {ttl.days} days.")


@app.command()
def blocked(
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=1000, help="Readers per page.")] = 50,
    format: Annotated[str, typer.Option(help="table or json")] = "table",
) -> None:
    """Readers no mail goes to (dead addresses, complaints), the latest blocked first."""
    with session_scope() as session:
        found = stats.blocked_readers(session, page=page, per_page=per_page)
    if format == "json":
        print_json(
            [
                {"email": r.email, "blocked_at": r.blocked_at, "why": r.reason,
                 "bounce_score": r.bounce_score}
                for r in found.readers
            ]
        )  # fmt: skip
        return
    pages = max(1, -(-found.total // per_page))
    table = Table(
        "Email", "Blocked at", "Why",
        title=f"Blocked readers (page {page} of {pages}, {found.total} in all)",
    )  # fmt: skip
    for reader in found.readers:
        when = f"{reader.blocked_at:%Y-%m-%d %H:%M} UTC" if reader.blocked_at else "-"
        table.add_row(reader.email, when, reader.reason or "no reason recorded")
    console.print(table)


@app.command()
def unblock(email: Annotated[str, typer.Argument(help="The reader's address.")]) -> None:
    """Send mail to a blocked reader again, on the lists they are still on (logged as cli)."""
    with session_scope() as session:
        reader = find_subscriber(session, email.strip())
        if reader is None:
            raise CommandError(f"no reader {email}")
        why = reader.blocked_reason
        if not policy.unblock(session, reader, who="cli", now=utcnow()):
            raise CommandError(f"{reader.email} is not blocked")
        address = reader.email
    console.print(
        f"Unblocked {address}: mail resumes to the lists they are still on (was blocked: {why})."
    )
