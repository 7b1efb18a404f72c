from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.common import (
    EMBEDDED_WORKER,
    console,
    queue,
    settings,
    utcnow,
    wait_for_edition,
)
from newsletter.db import session_scope
from newsletter.editions.dispatch import dispatch_due


def dispatch(
    wait: Annotated[bool, typer.Option(help="Follow each send until done.")] = False,
    embedded_worker: EMBEDDED_WORKER = False,
) -> None:
    """Build and send every list's due edition: the command for a system crontab.

    Safe to run every minute and from several machines: each list gets one edition a day.
    """
    with session_scope() as session:
        ready = dispatch_due(session, now=utcnow(), settings=settings())
    if not ready:
        console.print("No edition is due.")
        return
    again = "newsletter dispatch --wait"  # they stay scheduled: a later dispatch sends them
    with queue(follow=wait, embedded_worker=embedded_worker, again=again) as workers:
        for edition_id in ready:
            workers.handoff.send_edition(edition_id)
            console.print(f"Queued edition {edition_id}.")
        if wait or workers.local_worker:
            for edition_id in ready:
                wait_for_edition(edition_id, workers=workers)
