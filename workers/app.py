"""The Celery application: ``newsletter worker`` and ``newsletter beat`` run it, as do
``celery -A workers worker`` and ``celery -A workers beat``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler
from celery.schedules import crontab

from newsletter.config import Settings, get_settings
from newsletter.handoff import celery_config
from newsletter.runtime import BEAT_SCHEDULE_FILE, worker_concurrency

# Countdowns of retried batches stay well below this, or Redis would hand them out twice.
VISIBILITY_TIMEOUT_S = 2 * 60 * 60


class Schedule(PersistentScheduler):  # type: ignore[misc]  # Celery is untyped
    """Celery's schedule file, in a var/ made when it is missing; a folder named by
    ``--schedule`` must exist, so a mistyped path is an error rather than a new folder."""

    def setup_schedule(self) -> None:
        if self.schedule_filename == BEAT_SCHEDULE_FILE:
            Path(BEAT_SCHEDULE_FILE).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()


def create_app() -> Celery:
    settings = get_settings()
    if not settings.redis_url:
        raise RuntimeError(
            "NEWSLETTER_REDIS_URL is not set: a worker needs the Redis broker, "
            "e.g. NEWSLETTER_REDIS_URL=redis://127.0.0.1:6379/0"
        )
    app = Celery("newsletter", broker=settings.redis_url, include=["workers.tasks"])
    app.conf.update(
        **celery_config(settings),
        # Tasks are idempotent on the delivery ledger, so a lost worker's task may run again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=worker_concurrency(settings.database_url),
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_scheduler=f"{__name__}:Schedule",
        beat_schedule_filename=BEAT_SCHEDULE_FILE,
        beat_schedule={
            "dispatch-due-editions": {
                "task": "workers.tasks.dispatch_due_editions",
                # Every minute, on the minute; sooner only for tests that watch beat work.
                "schedule": (
                    timedelta(seconds=settings.beat_dispatch_seconds)
                    if settings.beat_dispatch_seconds < 60
                    else crontab(minute="*")
                ),
            },
            "poll-feeds": {
                "task": "workers.tasks.poll_feeds",
                "schedule": crontab(minute="*"),
            },
            "reconcile-deliveries": {
                "task": "workers.tasks.reconcile_deliveries",
                "schedule": crontab(minute="*/5"),
            },
            "purge-expired-signups": {
                "task": "workers.tasks.purge_expired_signups",
                "schedule": crontab(minute=17, hour=3),
            },
            "process-stored-inbound": {
                "task": "workers.tasks.process_stored_inbound",
                "schedule": crontab(minute="*/5"),
                "options": {"expires": 240},
            },
            "flush-clicks": {
                "task": "workers.tasks.flush_clicks",
                "schedule": crontab(minute="*"),
                "options": {"expires": 55},
            },
            "purge-reader-clicks": {
                "task": "workers.tasks.purge_reader_clicks",
                "schedule": crontab(minute=47, hour=3),
            },
            "purge-inbound": {
                "task": "workers.tasks.purge_inbound",
                "schedule": crontab(minute=37, hour=3),
            },
            **_mailbox_schedule(settings),
        },
    )
    return app


def _mailbox_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Poll the bounce mailbox every minute, if there is one."""
    if not settings.imap_url:
        return {}
    return {
        "poll-bounce-mailbox": {
            "task": "workers.tasks.poll_bounce_mailbox",
            "schedule": crontab(minute="*"),
            # A poll not started within the minute is dropped: the next one reads the same mail.
            "options": {"expires": 55},
        }
    }
