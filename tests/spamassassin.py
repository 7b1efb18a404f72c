"""SpamAssassin (Debian ``spamassassin``, local tests only) scoring messages as sent.

``spamassassin -L -t`` runs every rule that needs no network (no DNS blocklists, no
Razor/Pyzor) and appends its report to the message; :func:`spam_reports` runs one process
for any number of messages (the rules take most of the ~2 s a run costs to load) and parses
each report into the rules that fired and their scores. Bayes is off: what a receiver's own
filter has learnt is not ours to test, and learning would make one run depend on the last.

Without ``spamassassin`` the checks skip, unless ``NEWSLETTER_REQUIRE_SPAMASSASSIN`` is set
(as .ci/run sets it): then they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.required_tools import require_tool

INSTALL = "apt-get install spamassassin"
COMMAND = [
    "spamassassin", "--local", "--test-mode", "--nocreate-prefs",
    "--cf=use_bayes 0", "--cf=bayes_auto_learn 0",
]  # fmt: skip
_DETAILS = re.compile(r"^Content analysis details:\s+\((-?[0-9.]+) points, ([0-9.]+) required\)")
_RULE = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)\s+([A-Z0-9_]+)\s+(.*)$")
_CONTINUED = re.compile(r"^\s{10,}\S")

# Rules that say only that the message reached SpamAssassin without crossing a relay: true of
# every message read straight from our Maildir or SMTP sink, and of none that a receiving
# server scores (its own Received header is there). Both score -0.0 in SpamAssassin 4.
NOT_RELAYED = frozenset({"NO_RECEIVED", "NO_RELAYS"})


@dataclass(frozen=True)
class SpamReport:
    score: float
    required: float
    rules: dict[str, float]  # rule name -> its points in this message

    def positive(self) -> dict[str, float]:
        """The rules that added to the score, but those that only say it was not relayed."""
        return {
            name: points
            for name, points in self.rules.items()
            if points > 0 and name not in NOT_RELAYED
        }


def missing() -> str | None:
    return None if shutil.which("spamassassin") else f"spamassassin is not installed: {INSTALL}"


def require_spamassassin() -> None:
    """Skip the calling test without SpamAssassin; fail instead under .ci/run."""
    require_tool(missing(), variable="NEWSLETTER_REQUIRE_SPAMASSASSIN")


def parse_report(lines: list[str]) -> SpamReport:
    """One report, from its "Content analysis details" line on."""
    details = _DETAILS.match(lines[0])
    assert details is not None, lines[0]
    rules: dict[str, float] = {}
    separator = next(i for i, line in enumerate(lines) if line.startswith("---- "))
    for line in lines[separator + 1 :]:
        rule = _RULE.match(line)
        if rule is not None:
            rules[rule.group(2)] = float(rule.group(1))
        elif not _CONTINUED.match(line):
            break
    return SpamReport(float(details.group(1)), float(details.group(2)), rules)


def spam_reports(messages: Sequence[bytes], *, timeout: float = 300) -> list[SpamReport]:
    """SpamAssassin's report on each message, in order, from one run."""
    with tempfile.TemporaryDirectory(prefix="spamassassin-") as folder:
        paths = []
        for index, data in enumerate(messages):
            path = Path(folder) / f"{index:04d}.eml"
            path.write_bytes(data)
            paths.append(str(path))
        done = subprocess.run(
            [*COMMAND, *paths],
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "LANG": "C.UTF-8"},
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    lines = done.stdout.decode("utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if _DETAILS.match(line)]
    assert len(starts) == len(messages), f"{len(starts)} reports for {len(messages)} messages"
    return [parse_report(lines[start:]) for start in starts]
