"""SpamAssassin, local tests only, finds nothing to hold against any message the demo sends,
as sent: no rule with a positive score but those that only say it was not relayed (issue 13).
"""

from __future__ import annotations

import pytest

from tests.sent_messages import MESSAGES, SentMessage
from tests.spamassassin import SpamReport, require_spamassassin, spam_reports


@pytest.fixture(scope="module")
def reports(sent: dict[str, SentMessage]) -> dict[str, SpamReport]:
    """Every message scored in one SpamAssassin run."""
    require_spamassassin()
    return dict(zip(sent, spam_reports([m.data for m in sent.values()]), strict=True))


@pytest.mark.parametrize("name", MESSAGES)
def test_no_rule_adds_to_the_score(name: str, reports: dict[str, SpamReport]) -> None:
    report = reports[name]
    assert report.positive() == {}, f"{report.score} points: {report.rules}"
