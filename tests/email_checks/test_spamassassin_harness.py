"""tests/spamassassin.py reads SpamAssassin's report: every rule, its points, the total."""

from __future__ import annotations

from tests.spamassassin import parse_report

REPORT = """\
Content analysis details:   (2.1 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
-0.0 NO_RECEIVED            Informational: message has no Received headers
-0.0 NO_RELAYS              Informational: message was not relayed via SMTP
 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to
                            background
 1.4 MIME_QP_LONG_LINE      RAW: Quoted-printable line longer than 76 chars
 0.0 HTML_MESSAGE           BODY: HTML included in message

--=_boundary--
 9.9 NOT_A_RULE             after the report
"""


def test_every_rule_and_its_points_are_read() -> None:
    report = parse_report(REPORT.splitlines())

    assert (report.score, report.required) == (2.1, 5.0)
    assert report.rules == {
        "NO_RECEIVED": -0.0, "NO_RELAYS": -0.0, "HTML_FONT_LOW_CONTRAST": 0.7,
        "MIME_QP_LONG_LINE": 1.4, "HTML_MESSAGE": 0.0,
    }  # fmt: skip


def test_only_positive_rules_count_and_not_those_that_say_it_was_not_relayed() -> None:
    report = parse_report(REPORT.splitlines())

    assert report.positive() == {"HTML_FONT_LOW_CONTRAST": 0.7, "MIME_QP_LONG_LINE": 1.4}
