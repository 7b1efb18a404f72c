"""A newcomer's first hour, as README's "Using it" walks it, on a fresh directory: the real
``newsletter`` command for each step, the served app in Chromium, and the Maildir outbox a
laptop has instead of a relay. Nothing but the README's own commands and settings: no
NEWSLETTER_BASE_URL, no Redis, the default SQLite file under ``var/``.

The install's clock starts at a fixed moment (NEWSLETTER_CLOCK_START) in every process, after
both lists' 07:00 New York send time, so the run is the same at whatever hour it runs.
"""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from newsletter.runtime import free_port
from tests.cli_runner import NEWSLETTER, newcomer_env

CLOCK_START = "2027-03-28T12:00:00Z"  # 08:00 in New York: both lists are due
EDITOR, PASSWORD = "ed@example.com", "a long editor passphrase"
READERS = ["ada@example.com", "grace@example.com"]
NEWCOMER = "newcomer@example.com"
LIST = ["--from-address", "news@example.com", "--schedule", "0 7 * * *"]
TIMEOUT_S = 60


class Checkout:
    """A fresh directory with the newcomer's environment, and the commands run in it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env = newcomer_env(
            directory, NEWSLETTER_ENVIRONMENT="development", NEWSLETTER_CLOCK_START=CLOCK_START
        )

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(NEWSLETTER), *args], cwd=self.directory, env=self.env, input=stdin,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, f"newsletter {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return " ".join(done.stdout.split())

    def outbox(self) -> list[EmailMessage]:
        folder = self.directory / "var" / "outbox" / "new"
        messages = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            messages.append(message)
        return messages

    def mail_to(self, address: str, subject: str = "") -> list[EmailMessage]:
        return [
            m for m in self.outbox() if address in str(m["To"]) and subject in str(m["Subject"])
        ]

    def wait_for_mail(self, address: str, subject: str = "", count: int = 1) -> EmailMessage:
        deadline = time.monotonic() + TIMEOUT_S
        while len(found := self.mail_to(address, subject)) < count:
            assert time.monotonic() < deadline, f"no mail to {address} ({subject!r})"
            time.sleep(0.2)
        return found[-1]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def links(message: EmailMessage) -> list[str]:
    return re.findall(r"https?://[^\s<>\"]+", text_of(message))


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path)


@pytest.fixture
def served(checkout: Checkout) -> Iterator[str]:
    """``newsletter serve --port P``, as README says, until the test ends."""
    port = free_port()
    server = subprocess.Popen(
        [str(NEWSLETTER), "serve", "--port", str(port)], cwd=checkout.directory,
        env=checkout.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    url = f"http://localhost:{port}"
    try:
        first = server.stdout.readline().strip()
        assert first == f"Links in emails and pages start with {url}", first
        import httpx

        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code < 600:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "newsletter serve did not start"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()


def test_the_using_it_path_from_a_fresh_directory(
    checkout: Checkout, served: str, page: Page
) -> None:
    # The schema, two lists, the sample feed dated into today, readers and an editor.
    checkout.run("db", "upgrade")
    for slug, name in (("daily", "Shortlysts Daily"), ("evening", "Shortlysts Evening")):
        checkout.run(
            "lists", "create", slug, "--name", name, *LIST, "--timezone", "America/New_York"
        )
    imported = checkout.run("posts", "import", "--sample")
    assert "Imported 15 posts: 15 new" in imported
    (checkout.directory / "readers.csv").write_text("email\n" + "\n".join(READERS) + "\n")
    for slug in ("daily", "evening"):
        checkout.run("subscribers", "import", "readers.csv", "--list", slug)
    checkout.run("editors", "create", EDITOR, "--password-stdin", stdin=PASSWORD + "\n")

    # A visitor signs up on the served app and confirms through the email's own link.
    page.goto(f"{served}/subscribe?list=daily")
    page.get_by_label("Email address").fill(NEWCOMER)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    confirmation = checkout.wait_for_mail(NEWCOMER, "onfirm")
    confirm_url = next(u for u in links(confirmation) if "/confirm/" in u)
    assert confirm_url.startswith(f"{served}/confirm/")
    page.goto(confirm_url)
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're subscribed")

    # The editor prepares today's edition of the daily list and sends it.
    page.goto(f"{served}/admin")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Prepare today's edition of Shortlysts Daily").click()
    expect(page.locator("#status-badge")).to_have_text(re.compile("draft|scheduled"))
    expect(page.locator("table.posts tbody tr")).to_have_count(15)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("#status-badge")).to_have_text("sent", timeout=TIMEOUT_S * 1000)

    digest = checkout.wait_for_mail(NEWCOMER, "Shortlysts Daily, ")
    for reader in READERS:
        checkout.wait_for_mail(reader, "Shortlysts Daily, ")
    assert "More headlines" in text_of(digest) or "15." in text_of(digest)
    reader_links = [u for u in links(digest) if "/unsubscribe/" in u or "/preferences/" in u]
    assert reader_links
    assert all(u.startswith(f"{served}/") for u in reader_links)
    page.goto(next(u for u in reader_links if "/preferences/" in u))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")

    # Cron: the first dispatch sends the evening list's edition, the second finds nothing due.
    first = checkout.run("dispatch")
    assert "Queued edition" in first
    for reader in READERS:
        checkout.wait_for_mail(reader, "Shortlysts Evening, ")
    sent = len(checkout.outbox())
    second = checkout.run("dispatch")
    assert second == "No edition is due."
    time.sleep(1)
    assert len(checkout.outbox()) == sent
    assert len(checkout.mail_to(NEWCOMER, "Shortlysts Daily, ")) == 1
