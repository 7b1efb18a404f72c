"""``newsletter inbound``: the server that receives bounces, and tools to read them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from newsletter import handoff
from newsletter.cli.common import CommandError, console, errors, print_json, settings, utcnow
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.verp import ReturnPath
from newsletter.inbound import intake
from newsletter.inbound.classify import classify, report_json
from newsletter.inbound.mailbox import (
    BadMailboxURL,
    LoginRefused,
    MailboxError,
    MailboxURL,
    PollResult,
)
from newsletter.inbound.returned import EventLine, Returned, returned_message, returned_messages
from newsletter.inbound.server import InboundHandler
from newsletter.inbound.server import serve as serve_smtp
from newsletter.models import InboundStatus

app = typer.Typer(help="Mail that comes back: bounces, complaints, email unsubscribes.")
log = logging.getLogger(__name__)


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"


SWEEP_EVERY_S = 60.0
RETRY_AFTER_S = 5.0


class _Processor:
    """Processes stored messages one at a time in a thread, after they were acknowledged."""

    def __init__(self, config: Settings, clock: Clock) -> None:
        self.config, self.clock = config, clock
        self.ids: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="inbound-process", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        # What a crash or a stop left stored and unprocessed goes first, and again whenever
        # the server is idle for a minute or the database failed: the thread outlives an
        # outage, waiting on its queue (so a stop is seen at once) before it tries again.
        sweep = True
        while True:
            if sweep:
                try:
                    handoff.process_pending_inbound(self.config, self.clock)
                    sweep = False
                except Exception:
                    log.exception("could not process stored messages; trying again shortly")
            try:
                message_id = self.ids.get(timeout=RETRY_AFTER_S if sweep else SWEEP_EVERY_S)
            except queue.Empty:
                sweep = True
                continue
            if message_id is None:
                return
            try:
                for edition_id in handoff.process_inbound(message_id, self.config, self.clock):
                    log.warning("edition %s paused itself: see the admin for why", edition_id)
            except Exception:
                log.exception("message %s stays stored; the next sweep processes it", message_id)
                sweep = True


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 2525,
    lmtp: Annotated[bool, typer.Option(help="Speak LMTP (for Postfix's lmtp transport).")] = False,
    hostname: Annotated[str, typer.Option(help="Name in the greeting.")] = "",
) -> None:
    """Receive bounces, complaints and email unsubscribes over SMTP (or LMTP).

    Accepts mail for NEWSLETTER_BOUNCE_ADDRESS (with any +tag) and
    NEWSLETTER_UNSUBSCRIBE_ADDRESS only, and refuses every other recipient. Each message is
    stored in the database before the 250, then processed. Route the bounce domain here
    from your MTA; docs/inbound.md has the Postfix transport_maps line.
    """
    config = settings()
    clock: Clock = utcnow
    return_path = ReturnPath.parse(config.bounce_address, config.secret_key)
    if return_path is None:
        typer.secho(
            "WARNING: NEWSLETTER_BOUNCE_ADDRESS is empty, so messages go out without a VERP "
            "return path and only email unsubscribe requests arrive here.",
            fg=typer.colors.YELLOW, err=True,
        )  # fmt: skip
    processor = _Processor(config, clock)

    def store(raw: bytes, sender: str, recipients: Sequence[str], source: str) -> int:
        stored = handoff.store_inbound(raw, sender, list(recipients), source, config, clock)
        if stored is None:  # only provider events, with an id of their own, are deduplicated
            raise RuntimeError("an SMTP message was taken for a duplicate")
        return stored

    handler = InboundHandler(
        return_path, config.unsubscribe_mailbox, store, processor.ids.put, lmtp=lmtp
    )
    accepted = [config.unsubscribe_mailbox]
    if return_path is not None:
        accepted.insert(0, f"{return_path.local}+*@{return_path.domain}")
    console.print(
        f"Inbound {'LMTP' if lmtp else 'SMTP'} on {host}:{port} for {', '.join(accepted)}; "
        f"messages up to {config.inbound_max_bytes:,} bytes. Ctrl-C stops it."
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(handler, host, port, config.inbound_max_bytes, hostname or host))
    processor.ids.put(None)


async def _run(handler: InboundHandler, host: str, port: int, max_bytes: int, name: str) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serve_smtp(handler, host=host, port=port, max_bytes=max_bytes, hostname=name)


@app.command()
def parse(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    output: Annotated[Format, typer.Option("--format", help="text or json (one per line).")] = (
        Format.TEXT
    ),
) -> None:
    """Say what returned messages are (DSN, complaint, auto-reply, unsubscribe); no changes.

    Prints each message's kind and, for bounces, each recipient's status, action, category
    (hard, soft, sender) and reason; --format json prints one JSON object per line. Nothing
    is stored and no reader is touched.
    """
    for path in files:
        report = classify(path.read_bytes())
        if output == Format.JSON:
            print(json.dumps(report_json(report, str(path))))
            continue
        console.print(f"[bold]{path}[/]: {report.kind}")
        for r in report.recipients:
            console.print(
                f"  {r.address or '(no address)'}  {r.action}  {r.status or '-'}  "
                f"{r.category} ({r.reason})  {r.diagnostic[:100]}"
            )
        for defect in report.defects:
            console.print(f"  [yellow]malformed:[/] {defect}")


@app.command()
def process(
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="First put the messages whose processing failed back to be processed "
            "(after the fix for what failed them).",
        ),
    ] = False,
) -> None:
    """Process returned messages stored and not yet processed (after a crash, say)."""
    config = settings()
    if retry_failed:
        with session_scope(config.database_url) as session:
            again = intake.retry_failed(session)
        console.print(f"{_count(again, 'failed message')} put back to be processed.")
    done = handoff.process_pending_inbound(config, utcnow)
    console.print(f"Processed {done} stored message{'s' if done != 1 else ''}.")


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit (the default).")] = (
        False
    ),
    every: Annotated[
        float | None, typer.Option(help="Poll every SECONDS until stopped.", min=1)
    ] = None,
) -> None:
    """Read the hosted bounce mailbox (NEWSLETTER_IMAP_URL) over IMAP.

    Each message is stored in the database, then moved to NEWSLETTER_IMAP_PROCESSED_FOLDER
    (deleted when that is empty), then processed. A message over NEWSLETTER_INBOUND_MAX_BYTES
    stays in the mailbox. The beat task polls every minute when NEWSLETTER_IMAP_URL is set.
    """
    if once and every is not None:
        raise CommandError("--once and --every say different things: give one of them")
    config = settings()
    if not config.imap_url:
        raise CommandError(
            "NEWSLETTER_IMAP_URL is not set: give the bounce mailbox, e.g. "
            "imaps://user:password@imap.example.com/INBOX"
        )
    try:
        name = MailboxURL.parse(config.imap_url).name
    except BadMailboxURL as error:
        raise CommandError(str(error)) from None
    if every is None:
        result = _poll_once(config, name)
        if result.failed:
            raise CommandError(
                f"{result.failed} message(s) could not be stored and stay in the mailbox; "
                "the log above says why"
            )
        return
    console.print(f"Polling {name} every {every:g} s; Ctrl-C stops it.")
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            try:
                _poll_once(config, name)
            except CommandError as error:
                if isinstance(error.__cause__, BadMailboxURL | LoginRefused):
                    raise  # retrying a refused password would only lock the account
                errors.print(f"[yellow]warning:[/] {error}; trying again in {every:g} s")
            time.sleep(every)


def _poll_once(config: Settings, name: str) -> PollResult:
    try:
        with console.status(f"Polling {name}…"):
            result = handoff.poll_mailbox(config, utcnow)
    except MailboxError as error:
        raise CommandError(str(error)) from error
    cleared = (
        f"{result.moved} moved to {config.imap_processed_folder}"
        if config.imap_processed_folder
        else f"{result.deleted} deleted"
    )
    line = (
        f"{name}: {result.fetched} fetched, {result.stored} stored, {result.duplicates} stored "
        f"before, {cleared}, {result.failed} failed"
    )
    if result.too_large:
        line += f"; {result.too_large} over {config.inbound_max_bytes:,} bytes left in place"
    if result.left:
        line += f"; {result.left} left for the next poll"
    console.print(line)
    return result


# Control characters (C0 but tab and newline, DEL, C1) in returned mail would drive the
# operator's terminal: anyone can send us mail, so they are shown as "?".
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(text: str) -> str:
    return _CONTROL.sub("?", text)


def _say(text: str) -> None:
    """Print a line built from returned mail: no rich markup, no control characters."""
    console.print(_plain(text), markup=False, highlight=False)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _outcome(event: EventLine) -> str:
    what = event.kind.replace("_", " ") + (f" {event.category}" if event.category else "")
    return f"{what}: {event.outcome or 'none'}"


def _line(message: Returned) -> str:
    outcomes = "; ".join(_outcome(e) for e in message.events) or "no events"
    error = f"  error: {message.error_line}" if message.error_line else ""
    return (
        f"#{message.id}  {message.received_at:%Y-%m-%d %H:%M} UTC  {message.source}  "
        f"{message.size:,} B  {message.kind or '-'}  {message.status.value}  {outcomes}{error}"
    )


@app.command("list")
def list_messages(
    status: Annotated[
        InboundStatus | None, typer.Option(help="Only messages in this status.")
    ] = None,
    page: Annotated[int, typer.Option(min=1, help="Page, from 1 (50 to a page).")] = 1,
    output: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.TEXT,
) -> None:
    """Returned messages stored, the latest first: status, kind, error and what each did.

    'failed' lists the messages whose processing failed; after fixing what failed them,
    'newsletter inbound process --retry-failed' processes them again. 'newsletter inbound
    show ID' shows one in full.
    """
    with session_scope(settings().database_url) as session:
        found = returned_messages(session, status=status, page=page)
    if output == Format.JSON:
        print_json(
            {"total": found.total, "page": page, "pages": found.pages,
             "messages": [m.as_json() for m in found.messages]}
        )  # fmt: skip
        return
    which = f"{status.value} " if status is not None else ""
    console.print(
        f"{_count(found.total, which + 'returned message')}; page {page} of {found.pages}."
    )
    for message in found.messages:
        _say(_line(message))


@app.command()
def show(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="The message's id.")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the message as it came, after the summary.")
    ] = False,
) -> None:
    """One returned message: its headers, what it said and did, and its whole error.

    --raw adds the message as it came: exact bytes when piped (to a file for 'newsletter
    inbound parse', say); on a terminal, control characters are shown as '?'.
    """
    with session_scope(settings().database_url) as session:
        detail = returned_message(session, message_id)
    if detail is None:
        raise CommandError(f"no returned message {message_id}")
    message = detail.message
    _say(
        f"Returned message #{message.id}: {message.kind or 'not yet read'}, "
        f"{message.status.value}; {message.size:,} bytes from {message.source} on "
        f"{message.received_at:%Y-%m-%d %H:%M} UTC."
    )
    if detail.envelope_from or detail.recipients:
        envelope = ", ".join(detail.recipients) or "-"
        _say(f"Envelope: from <{detail.envelope_from}> to {envelope}")
    for name, value in detail.headers:
        _say(f"  {name}: {value}")
    if message.error:
        _say(f"Error: {message.error}")
    for event in message.events:
        reader = f" reader {event.subscriber_id}" if event.subscriber_id else ""
        edition = f" edition {event.edition_id}" if event.edition_id else ""
        said = " ".join(x for x in (event.status, event.reason.replace("_", " ")) if x)
        _say(
            f"Event: {_outcome(event)} {event.address or '(no address)'}{reader}{edition}"
            f"{f' ({said})' if said else ''}"
        )
    if not message.events:
        _say("No events.")
    if not raw:
        return
    if detail.raw is None:
        raise CommandError(f"the raw message {message_id} was purged after its retention period")
    console.print("")
    sys.stdout.flush()
    if sys.stdout.isatty():
        _say(detail.raw.decode("utf-8", "replace"))
    else:
        sys.stdout.buffer.write(detail.raw)
        sys.stdout.flush()
