"""Each message the demo sends, and the stress digest, as sent: SpamAssassin's score (local
tests only) and the size in bytes, for the closing note of issue 13.

The messages are tests/sent_messages.py's: the demo edition's digest and the stress edition's
(tests/stress_edition.py), each personalised for one reader, and the confirm and welcome
notices; built on a fresh SQLite database in a temporary folder.

Prints JSON lines {"metric", "value", "unit"}:
  spamassassin_score.<message>         SpamAssassin's total (points; 5.0 is spam)
  spamassassin_rule.<message>.<RULE>   each rule that fired with a score other than 0
  bytes_as_sent.<message>              the whole message as it reaches the SMTP server
  html_bytes_as_sent.<message>         its HTML part as sent (quoted-printable, what Gmail
                                       counts towards its clipping size)

Usage: python bench/email_quality.py   (needs spamassassin: apt-get install spamassassin)
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit}), flush=True)


def html_part_bytes(data: bytes) -> int:
    """The HTML part's body as it travels (transfer-encoded), without its headers."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=False)
            return len(str(payload).encode("ascii", errors="replace"))
    return 0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="email-quality-") as folder:
        report(Path(folder))


def report(folder: Path) -> None:
    database_url = f"sqlite:///{folder / 'bench.db'}"
    os.environ.update(
        {
            "NEWSLETTER_ENVIRONMENT": "test",
            "NEWSLETTER_SECRET_KEY": "bench-secret-key-not-for-production",
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_BASE_URL": "https://news.example.com",
            "NEWSLETTER_OUTBOX_DIR": str(folder / "outbox"),
            "NEWSLETTER_ENV_FILE": str(folder / "none.env"),
            "NEWSLETTER_FIRST_EDITION_LOOKBACK_HOURS": "48",
        }
    )
    from newsletter import migrate
    from newsletter.config import get_settings
    from newsletter.db import session_factory
    from tests.moments import TEST_NOW
    from tests.sent_messages import sent_messages
    from tests.spamassassin import missing, spam_reports

    get_settings.cache_clear()
    migrate.upgrade(database_url)
    with session_factory(database_url)() as session:
        messages = sent_messages(session, now=TEST_NOW, settings=get_settings())
    reason = missing()
    reports = spam_reports([m.data for m in messages]) if reason is None else None
    for index, message in enumerate(messages):
        name = message.name.replace(" ", "_")
        if reports is not None:
            report = reports[index]
            emit(f"spamassassin_score.{name}", report.score, "points")
            for rule, points in sorted(report.rules.items()):
                if points != 0:
                    emit(f"spamassassin_rule.{name}.{rule}", points, "points")
        emit(f"bytes_as_sent.{name}", len(message.data), "B")
        emit(f"html_bytes_as_sent.{name}", html_part_bytes(message.data), "B")
    if reason is not None:
        print(f"no SpamAssassin scores: {reason}", file=sys.stderr)


if __name__ == "__main__":
    main()
