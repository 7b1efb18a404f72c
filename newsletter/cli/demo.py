"""``newsletter demo``: the whole pipeline on a laptop, on real parts, in one command."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table

from newsletter import migrate
from newsletter.cli.common import console, queue, settings, utcnow, wait_for_edition
from newsletter.cli.digest import PREVIEW_READER
from newsletter.cli.posts import print_import_report
from newsletter.db import session_scope
from newsletter.delivery.prepared import prepare_edition
from newsletter.delivery.progress import progress
from newsletter.editions.build import build_edition
from newsletter.lists.schedule import edition_cutoff, local_date
from newsletter.lists.service import ListSpec, create_list, find_list
from newsletter.models import EditionStatus
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.sample import sample_posts
from newsletter.rendering.render import sent_size
from newsletter.subscriptions.service import Signup, import_subscribers

DEMO_LIST = ListSpec(
    slug="daily",
    name="Shortlysts Daily",
    from_address="digest@shortlysts.example.com",
    from_name="Shortlysts",
    schedule="0 7 * * *",
    timezone="America/New_York",
    description="The day's news in five minutes, every morning at 7.",
)
DEMO_READERS = [
    Signup("ada@example.com", "Ada Lovelace"),
    Signup("grace@example.com", "Grace Hopper"),
    Signup("alan@example.org", "Alan Turing"),
    Signup("katherine@example.net", "Katherine Johnson"),
    Signup("linus@example.com", "Linus Pauling"),
]


def demo() -> None:
    """Run the daily digest end to end on this machine and print where the mail went.

    Creates var/ here (SQLite database, Maildir outbox), starts an embedded Redis and a real
    Celery worker, imports the sample Shortlysts feed, subscribes five sample readers, builds
    today's edition and sends it through the queue.
    """
    started = time.perf_counter()
    config = settings()
    now = utcnow()
    console.rule("[bold]newsletter demo")
    migrate.upgrade(config.database_url)
    console.print(f"Database ready: {config.database_url}")

    with session_scope() as session:
        nl = find_list(session, DEMO_LIST.slug) or create_list(session, DEMO_LIST)
        today = local_date(nl.timezone, now)
        cutoff = edition_cutoff(nl.schedule, nl.timezone, today, now)
        report = upsert_posts(session, sample_posts(before=cutoff, now=now))
        print_import_report(report)
        readers = import_subscribers(session, nl, DEMO_READERS, now=now, source="demo")
        console.print(
            f"Readers on {nl.slug}: {readers.added} new, {readers.already} already there."
        )
        result = build_edition(session, nl, today, now=now, settings=config)
        edition = result.edition
        edition_id, story_count = edition.id, len(edition.items)
        already_sent = edition.status in (EditionStatus.SENDING, EditionStatus.SENT)
        console.print(
            f"Edition {edition.id} for {today}: {story_count} stories, "
            f"{sent_size(edition.html):,} bytes of HTML as sent, "
            f"rendered in {edition.render_ms} ms."
        )
        preview = Path("var/preview") / f"edition-{edition.id}.html"
        preview.parent.mkdir(parents=True, exist_ok=True)
        _, html, _ = prepare_edition(edition, config, now=now).bodies(PREVIEW_READER)
        preview.write_text(html, encoding="utf-8")

    if already_sent:
        console.print(
            "[yellow]Today's edition was sent by an earlier run; delete var/ to start over.[/]"
        )
    else:
        with queue() as workers:
            workers.handoff.send_edition(edition_id)
            wait_for_edition(edition_id, timeout=300)

    with session_scope() as session:
        state = progress(session, edition_id, now=utcnow())
    summary = Table(show_header=False, title="Demo summary", title_justify="left")
    summary.add_row("Posts imported", str(report.imported))
    summary.add_row("Stories in today's edition", str(story_count))
    summary.add_row("Recipients", str(state.total))
    summary.add_row("Delivered", str(state.sent))
    summary.add_row("Failed", str(state.failed))
    summary.add_row("Outbox (Maildir)", str(Path(config.outbox_dir).resolve() / "new"))
    summary.add_row("Open in a browser", str(preview.resolve()))
    summary.add_row("Wall time", f"{time.perf_counter() - started:.1f} s")
    console.print(summary)
