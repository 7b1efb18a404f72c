"""Workers on two machines: one in a network namespace (:mod:`tests.netns`), one on this
host, sending one edition to a real SMTP server that counts what each reader got (issue 11).

Each test hits the namespaced worker mid-send with one fault: its whole link cut for longer
than its lease, its link to Redis only cut, or kill -9. ``digest reconcile`` runs during the
fault once the lease is over; when the edition is sent, ``digest retry-uncertain`` queues
what the ledger could not vouch for. At the SMTP server, before the retry nobody got two
copies and everyone missing is uncertain or failed in the ledger; after it, nobody is
missing, only the messages in flight at the fault arrived twice, each flagged
``maybe_duplicate``, and the ledger's sent count is the number of readers who received it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from newsletter.clock import system_clock
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.delivery.progress import Progress
from newsletter.models import Delivery, DeliveryStatus, NewsletterList, Subscriber
from tests.cli_runner import run
from tests.integration.helpers import (
    sample_edition,
    start_solo_worker,
    stop_worker,
    wait_until_sent,
)
from tests.netns import Host, second_host
from tests.services import wait_for_worker
from tests.smtp_server import RecordingHandler, SMTPServer

pytestmark = pytest.mark.skipif(
    not os.environ.get("NEWSLETTER_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="PostgreSQL only: workers on several machines share PostgreSQL, and a worker cut "
    "off inside a write would hold SQLite's one write lock",
)

READERS = [f"reader{i:04d}@example.com" for i in range(3000)]
BATCH = 1500  # one batch for each worker
FLUSH = 20
LEASE_S = 5.0
SMTP_TIMEOUT_S = 2.0
FAULT_S = 8.0  # longer than the lease
FAULT_AT = 500  # messages received before the fault
IN_FLIGHT = 2  # messages a fault may leave in flight, so may arrive twice
REMOTE = "newsletter-netns-worker"  # the namespaced worker's application_name in PostgreSQL
CELERY = [
    sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo", "--loglevel=INFO",
    "--without-gossip", "--without-mingle", "--without-heartbeat",
]  # fmt: skip


class DuplicatesBeyondInFlight(AssertionError):
    """More readers got two copies than there were messages in flight at the fault."""


@dataclass
class Workers:
    remote: subprocess.Popen[bytes]  # in the namespace: the one hit by the fault
    local: subprocess.Popen[bytes]
    remote_log: Path


@pytest.fixture
def env(
    broker: str, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Short leases for the workers and the CLI alike, on a queue of this test's own."""
    values = {
        "NEWSLETTER_CELERY_QUEUE": f"newsletter-netns-{uuid.uuid4().hex[:8]}",
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_BATCH_SIZE": str(BATCH),
        "NEWSLETTER_DELIVERY_FLUSH_SIZE": str(FLUSH),
        "NEWSLETTER_DELIVERY_LEASE_SECONDS": str(LEASE_S),
        "NEWSLETTER_SMTP_TIMEOUT": str(SMTP_TIMEOUT_S),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield values
    redis.Redis.from_url(broker).delete(values["NEWSLETTER_CELERY_QUEUE"])
    get_settings.cache_clear()


@pytest.fixture
def host(
    env: dict[str, str], database_url: str, broker: str, smtp_server: SMTPServer
) -> Iterator[Host]:
    """The second machine, reaching PostgreSQL, Redis and the SMTP server through its link."""
    ports = [make_url(database_url).port or 5432, urlsplit(broker).port or 6379, smtp_server.port]
    with second_host(ports) as namespace:
        yield namespace


@pytest.fixture
def workers(
    host: Host, env: dict[str, str], database_url: str, broker: str, smtp_server: SMTPServer,
    tmp_path: Path,
) -> Iterator[Workers]:  # fmt: skip
    database = make_url(host.url(database_url)).update_query_dict({"application_name": REMOTE})
    remote_env = {
        **os.environ, **env,
        "NEWSLETTER_DATABASE_URL": database.render_as_string(hide_password=False),
        "NEWSLETTER_REDIS_URL": host.url(broker),
        "NEWSLETTER_SMTP_URL": host.url(smtp_server.url),
    }  # fmt: skip
    logs = tmp_path / "worker-remote.log", tmp_path / "worker-local.log"
    remote = host.start(CELERY, remote_env, logs[0])
    local = start_solo_worker(env, logs[1])
    try:
        wait_for_worker(logs[0], remote)
        wait_for_worker(logs[1], local)
        yield Workers(remote, local, logs[0])
    finally:
        for process in (remote, local):
            try:
                stop_worker(process)
            except subprocess.TimeoutExpired:
                stop_worker(process, signal.SIGKILL)


def send_until_remote_is_mid_send(
    edition_id: int, host: Host, smtp_port: int, smtp: RecordingHandler, log: Path
) -> int:
    """Start the send; return once the namespaced worker is passing a message to the SMTP
    server and FAULT_AT messages have arrived. Returns how many had."""
    code, output = run("digest", "send", str(edition_id), "--no-wait")
    assert code == 0, output
    assert host.forwarder is not None
    deadline = time.monotonic() + 60
    while len(smtp.received) < FAULT_AT or host.forwarder.quiet_for(smtp_port) > 0.005:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.001)
    return len(smtp.received)


def remote_is_writing() -> bool:
    """Whether the namespaced worker has a transaction open that has written (holds an xid,
    so row locks): PostgreSQL keeps those until it notices the client is gone."""
    with session_scope() as session:
        return bool(session.scalar(
            select(func.count()).select_from(text("pg_stat_activity"))
            .where(text("application_name = :name AND backend_xid IS NOT NULL"))
            .params(name=REMOTE)
        ))  # fmt: skip


def cut_between_writes(host: Host, edition_id: int, smtp_port: int, log: Path) -> int:
    """Cut the link while the namespaced worker sends, but not inside a transaction that
    wrote: its row locks would outlive the cut (see ``reconcile``). Returns the tries."""
    assert host.forwarder is not None
    for attempt in range(1, 21):
        deadline = time.monotonic() + 30
        while host.forwarder.quiet_for(smtp_port) > 0.005:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.001)
        host.cut()
        time.sleep(0.2)
        if not remote_is_writing():
            return attempt
        print(f"cut inside a write transaction of the namespaced worker (try {attempt})")
        host.restore()
        time.sleep(0.5)
    raise AssertionError("the namespaced worker was always inside a write transaction")


def _claims(edition_id: int) -> dict[str, list[int]]:
    """The rows each claim holds: the group it sends, and the rest of the range it reserved.

    Reserved rows count too: a cut that lands between two groups (the SMTP link is quiet
    then, while the worker writes one group and claims the next) leaves the worker no row
    in ``sending``, only its reservation.
    """
    with session_scope() as session:
        rows = session.execute(
            select(Delivery.claim, Delivery.id).where(
                Delivery.edition_id == edition_id,
                Delivery.status.in_([DeliveryStatus.SENDING, DeliveryStatus.QUEUED]),
                Delivery.claim.is_not(None),
            )
        ).all()
    held: dict[str, list[int]] = {}
    for claim, delivery_id in rows:
        held.setdefault(str(claim), []).append(delivery_id)
    return held


def stranded_rows(edition_id: int) -> set[int]:
    """The queued rows of the range whose claim has not moved for a second: the cut-off or
    dead worker's batch, which no other worker is given until reconcile hands it out."""
    before = _claims(edition_id)
    time.sleep(1)
    after = _claims(edition_id)
    stuck = [ids for claim, ids in after.items() if before.get(claim) == ids]
    assert stuck, "the namespaced worker held no claim when the fault hit"
    with session_scope() as session:
        ids = session.scalars(
            select(Delivery.id).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
        ).all()
        # The ranges the send started with: BATCH rows each, in id order.
        position = ids.index(stuck[0][0]) // BATCH * BATCH
        first, last = ids[position], ids[min(position + BATCH, len(ids)) - 1]
        return set(session.scalars(
            select(Delivery.id).where(
                Delivery.edition_id == edition_id, Delivery.id.between(first, last),
                Delivery.status == DeliveryStatus.QUEUED,
            )
        ))  # fmt: skip


class ReconcileBlocked(AssertionError):
    """``digest reconcile`` waited on row locks held by a worker it cannot reach."""


def reconcile(timeout: float = 20) -> str:
    """``digest reconcile``, failing (not hanging) if it has not answered in ``timeout``."""
    answer: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: answer.append(run("digest", "reconcile")))
    thread.start()
    thread.join(timeout)
    if not answer:
        raise ReconcileBlocked(f"digest reconcile still waiting after {timeout:g} s")
    code, output = answer[0]
    assert code == 0, output
    return output


def wait_for_log(log: Path, text: str, after: int, timeout: float = 30) -> float:
    """Seconds until ``text`` appears in ``log`` past its first ``after`` bytes."""
    started = time.monotonic()
    while text not in log.read_bytes()[after:].decode(errors="replace"):
        assert time.monotonic() - started < timeout, f"no {text!r}: {log.read_text()[-3000:]}"
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass(frozen=True)
class Tally:
    """What the SMTP server received, next to what the ledger says."""

    state: Progress
    messages: int
    per_reader: Counter[str]
    sent: set[str]  # readers whose delivery the ledger calls sent
    unsure: set[str]  # uncertain or failed in the ledger
    flagged: set[str]  # sent, maybe twice

    @property
    def twice(self) -> set[str]:
        return {reader for reader, count in self.per_reader.items() if count > 1}

    @property
    def missing(self) -> set[str]:
        return set(READERS) - set(self.per_reader)

    def line(self) -> str:
        return (
            f"sent {self.state.sent}, received {self.messages} "
            f"({len(self.per_reader)} readers), duplicates {len(self.twice)}, "
            f"maybe-duplicates {self.state.maybe_duplicate}, missing {len(self.missing)}, "
            f"uncertain {self.state.uncertain}, failed {self.state.failed}"
        )


def tally(session: Session, edition_id: int, smtp: RecordingHandler, state: Progress) -> Tally:
    def readers(*where: object) -> set[str]:
        return set(session.scalars(
            select(Subscriber.email)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id, *where)  # type: ignore[arg-type]
        ))  # fmt: skip

    session.expire_all()
    with smtp.lock:
        received = list(smtp.received)
    return Tally(
        state=state,
        messages=len(received),
        per_reader=Counter(r for item in received for r in item.recipients),
        sent=readers(Delivery.status == DeliveryStatus.SENT),
        unsure=readers(Delivery.status.in_([DeliveryStatus.UNCERTAIN, DeliveryStatus.FAILED])),
        flagged=readers(Delivery.maybe_duplicate.is_(True), Delivery.status == DeliveryStatus.SENT),
    )


def check_before_retry(before: Tally) -> None:
    """Recovery alone never sends twice, and the ledger owns up to everyone missing."""
    assert not before.twice, "a reader got two copies with no retry of uncertain deliveries"
    assert before.sent <= set(before.per_reader), "a delivery marked sent never arrived"
    assert before.missing <= before.unsure, "a reader is missing and the ledger says sent"
    assert before.state.sent <= len(before.per_reader) <= before.state.sent + len(before.unsure)


def retry_uncertain(edition_id: int, before: Tally) -> Progress:
    if not before.state.uncertain:
        return before.state
    code, output = run("digest", "retry-uncertain", str(edition_id))
    assert code == 0, output
    print(output)
    return wait_until_sent(edition_id, timeout=60)


def check_after_retry(after: Tally, faults: int = 1) -> None:
    """After the retry: nobody missing, the ledger's sent count is what arrived, and only
    the messages in flight at a fault came twice, each flagged as a possible duplicate."""
    assert max(after.per_reader.values()) <= 2
    assert after.twice <= after.flagged, "a reader got two copies the ledger calls a clean send"
    assert not after.missing, "a reader is missing"
    assert (after.state.sent, after.state.failed, after.state.uncertain) == (len(READERS), 0, 0)
    assert after.state.sent == len(after.per_reader)
    assert after.messages == after.state.sent + len(after.twice)
    if len(after.twice) > IN_FLIGHT * faults:
        raise DuplicatesBeyondInFlight(
            f"{len(after.twice)} readers got two copies, more than the {IN_FLIGHT * faults} "
            "messages in flight at the fault"
        )


def takeover(stranded: set[int], at: datetime, event: str) -> str:
    """How the queued rows of the faulty worker's batch fared: how many went before ``at``
    (``event``), and when the last went."""
    with session_scope() as session:
        times = session.scalars(select(Delivery.sent_at).where(Delivery.id.in_(stranded))).all()
    sent = [t for t in times if t is not None]
    if not sent:
        return f"{len(stranded)} queued rows of its batch, none sent"
    return (
        f"{len(stranded)} queued rows of its batch; {sum(t < at for t in sent)} sent before "
        f"{event}, the last {(max(sent) - at).total_seconds():+.1f} s after it"
    )


@pytest.mark.parametrize("cut_s", [FAULT_S, None], ids=["8s", "until-sent"])
def test_link_cut_longer_than_the_lease(
    cut_s: float | None, env: dict[str, str], host: Host, workers: Workers, session: Session,
    daily_list: NewsletterList, settings: Settings, now: datetime, smtp_server: SMTPServer,
    smtp: RecordingHandler,
) -> None:  # fmt: skip
    """Cut for 8 s, or until the host's worker has finished the edition alone (which it
    must: the cut worker's batch is handed out again once its lease is over)."""
    assert host.forwarder is not None
    started = time.monotonic()
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    fault_at = send_until_remote_is_mid_send(
        edition.id, host, smtp_server.port, smtp, workers.remote_log
    )
    tries = cut_between_writes(host, edition.id, smtp_server.port, workers.remote_log)
    cut = time.monotonic() - 0.2
    try:
        stranded = stranded_rows(edition.id)  # takes a second: what came before is relayed
        crossed = host.forwarder.inbound[smtp_server.port]
        time.sleep(max(0.0, cut + LEASE_S + 1 - time.monotonic()))  # its lease has expired
        reconciled = reconcile()
        if cut_s is None:
            wait_until_sent(edition.id, timeout=40)
        time.sleep(max(0.0, cut + (cut_s or 0) - time.monotonic()))
    finally:
        crossed = host.forwarder.inbound[smtp_server.port] - crossed
        mark, restored_at = workers.remote_log.stat().st_size, system_clock()
        host.restore()
    restored = time.monotonic()
    back_s = wait_for_log(workers.remote_log, "succeeded in", mark)
    before = tally(session, edition.id, smtp, wait_until_sent(edition.id))
    finished_s = time.monotonic() - started
    check_before_retry(before)
    assert crossed == 0, "SMTP traffic crossed a cut link"

    after = tally(session, edition.id, smtp, retry_uncertain(edition.id, before))
    print(
        f"\nlink cut at {fault_at} received (try {tries}), for {restored - cut:.1f} s; "
        f"reconcile during the cut: {reconciled}"
        f"\n  stranded: {takeover(stranded, restored_at, 'the link returned')}; the cut worker "
        f"finished its task {back_s:.1f} s after the link returned"
        f"\n  before retry-uncertain: {before.line()}, {finished_s:.1f} s"
        f"\n  link cut ({'until sent' if cut_s is None else f'{cut_s:g} s'}): {after.line()}, "
        f"{time.monotonic() - started:.1f} s"
    )
    if cut_s is None:
        assert restored > cut + LEASE_S, "the edition was sent before the lease could expire"
    check_after_retry(after)


def test_redis_port_cut_mid_send(
    env: dict[str, str], host: Host, workers: Workers, session: Session,
    daily_list: NewsletterList, settings: Settings, now: datetime, smtp_server: SMTPServer,
    smtp: RecordingHandler, broker: str,
) -> None:  # fmt: skip
    """Only Redis is out of reach: the worker keeps its claims (it renews them in
    PostgreSQL) and goes on sending, so reconcile revokes nothing and nobody is uncertain."""
    assert host.forwarder is not None
    started = time.monotonic()
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    fault_at = send_until_remote_is_mid_send(
        edition.id, host, smtp_server.port, smtp, workers.remote_log
    )
    host.drop_port(urlsplit(broker).port or 6379)
    cut, smtp_bytes = time.monotonic(), host.forwarder.inbound[smtp_server.port]
    try:
        time.sleep(LEASE_S + 1)
        reconciled = reconcile()
        time.sleep(max(0.0, cut + FAULT_S - time.monotonic()))
    finally:
        smtp_bytes = host.forwarder.inbound[smtp_server.port] - smtp_bytes
        host.restore()
    before = tally(session, edition.id, smtp, wait_until_sent(edition.id))
    finished_s = time.monotonic() - started
    check_before_retry(before)

    after = tally(session, edition.id, smtp, retry_uncertain(edition.id, before))
    print(
        f"\nRedis cut at {fault_at} received, for {FAULT_S:g} s; the cut worker sent "
        f"{smtp_bytes / 2**20:.1f} MiB of SMTP meanwhile; reconcile during the cut: {reconciled}"
        f"\n  Redis cut: {after.line()}, {finished_s:.1f} s"
    )
    assert before.state.uncertain == 0, "a worker that could reach PostgreSQL lost its claim"
    check_after_retry(after)


def test_kill_9_mid_send(
    env: dict[str, str], host: Host, workers: Workers, session: Session,
    daily_list: NewsletterList, settings: Settings, now: datetime, smtp_server: SMTPServer,
    smtp: RecordingHandler,
) -> None:  # fmt: skip
    started = time.monotonic()
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    fault_at = send_until_remote_is_mid_send(
        edition.id, host, smtp_server.port, smtp, workers.remote_log
    )
    stop_worker(workers.remote, signal.SIGKILL)
    killed, killed_at = time.monotonic(), system_clock()
    stranded = stranded_rows(edition.id)
    time.sleep(max(0.0, killed + LEASE_S + 1 - time.monotonic()))
    reconciled = reconcile()
    before = tally(session, edition.id, smtp, wait_until_sent(edition.id))
    finished_s = time.monotonic() - started
    check_before_retry(before)

    time.sleep(max(0.0, killed + LEASE_S + SMTP_TIMEOUT_S + 0.5 - time.monotonic()))
    after = tally(session, edition.id, smtp, retry_uncertain(edition.id, before))
    print(
        f"\nkill -9 at {fault_at} received; reconcile {LEASE_S + 1:g} s later: {reconciled}"
        f"\n  stranded: {takeover(stranded, killed_at, 'the kill')}"
        f"\n  before retry-uncertain: {before.line()}, {finished_s:.1f} s"
        f"\n  kill -9: {after.line()}, {time.monotonic() - started:.1f} s"
    )
    check_after_retry(after)
