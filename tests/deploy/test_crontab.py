"""deploy/cron/newsletter, the cron alternative to beat: every job beat schedules has its
line, and every line runs a command the CLI takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.deploy_files import (
    INSTALLED,
    INSTALLED_CELERY,
    ROOT,
    cli_refusal,
    crontab_commands,
)

# What the crontab runs for each of beat's tasks (workers/app.py). A task without a
# `newsletter` command is handed to a worker with `celery call`, as beat would.
COMMAND_FOR_TASK = {
    "workers.tasks.dispatch_due_editions": [INSTALLED, "dispatch"],
    "workers.tasks.poll_feeds": [INSTALLED, "feeds", "poll"],
    "workers.tasks.reconcile_deliveries": [INSTALLED, "digest", "reconcile"],
    "workers.tasks.process_stored_inbound": [INSTALLED, "inbound", "process"],
    "workers.tasks.purge_expired_signups": [INSTALLED, "subscribers", "purge-pending"],
    "workers.tasks.purge_inbound": [
        INSTALLED_CELERY, "-A", "workers", "call", "workers.tasks.purge_inbound"
    ],
    "workers.tasks.poll_bounce_mailbox": [INSTALLED, "inbound", "poll"],
    "workers.tasks.flush_clicks": [INSTALLED, "analytics", "flush"],
    "workers.tasks.purge_reader_clicks": [INSTALLED, "analytics", "purge"],
}  # fmt: skip


def beat_tasks() -> set[str]:
    """Every task in beat's schedule, the bounce mailbox's included. In a process of its own:
    importing ``workers`` builds its Celery app from the settings of the moment, and keeps it
    for the tests that come after."""
    script = (
        "import json; from workers.app import create_app; "
        "print(json.dumps([e['task'] for e in create_app().conf.beat_schedule.values()]))"
    )
    env = {
        **os.environ,
        "NEWSLETTER_REDIS_URL": "redis://127.0.0.1:9/0",  # never connected to
        "NEWSLETTER_IMAP_URL": "imaps://bounces:password@imap.example.com/INBOX",
    }
    found = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return set(json.loads(found.stdout))


def test_every_beat_task_has_its_line_in_the_crontab() -> None:
    tasks = beat_tasks()

    assert tasks - COMMAND_FOR_TASK.keys() == set(), "a beat task the crontab does not run"
    for task in tasks:
        assert COMMAND_FOR_TASK[task] in crontab_commands(), task


@pytest.mark.parametrize(
    "command",
    [command for command in crontab_commands() if command[0] == INSTALLED],
    ids=lambda command: " ".join(command[1:]),
)
def test_every_crontab_line_is_a_command_the_cli_takes(command: list[str]) -> None:
    assert cli_refusal(command[1:]) is None
