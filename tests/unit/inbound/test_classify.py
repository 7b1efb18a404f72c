"""Reading mail that comes back: its kind, failed recipients and whose fault each failure was."""

from __future__ import annotations

import importlib
import json
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from newsletter.inbound.classify import RULES, Report, categorise, classify, report_json

CORPUS = Path(__file__).parents[2] / "data" / "bounces"
EXPECTED: dict[str, dict[str, object]] = json.loads((CORPUS / "expected.json").read_text())


def corpus(name: str) -> Report:
    return classify((CORPUS / name).read_bytes())


def dsn(diagnostic: str, status: str = "5.0.0", action: str = "failed") -> bytes:
    """A minimal RFC 3464 report for reader@example.org with the given reply."""
    return f"""\
From: MAILER-DAEMON@mx.example.net
To: bounce@news.example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; reader@Example.ORG
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {diagnostic}

--b
Content-Type: text/rfc822-headers

Message-ID: <12.345.abcdef012345@example.com>
To: reader@example.org

--b--
""".replace("\n", "\r\n").encode()


def plain(subject: str, body: str = "Hello.", **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Reader <reader@example.org>"
    message["To"] = "digest@news.example.com"
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


# --- delivery status notifications ---------------------------------------------------------


def test_a_dsn_gives_the_failed_recipient_with_a_lower_cased_domain() -> None:
    report = classify(dsn("550 5.1.1 <reader@example.org>: User unknown", "5.1.1"))
    assert report.kind == "bounce"
    assert [r.address for r in report.recipients] == ["reader@example.org"]


def test_a_dsn_gives_status_diagnostic_remote_mta_and_the_original_message_id() -> None:
    report = classify(dsn("550 5.1.1 <reader@example.org>: User unknown", "5.1.1"))
    [recipient] = report.recipients
    assert (recipient.status, recipient.remote_mta) == ("5.1.1", "mx.example.org")
    assert recipient.diagnostic == "550 5.1.1 <reader@example.org>: User unknown"
    assert report.original_message_id == "<12.345.abcdef012345@example.com>"


def test_a_delayed_recipient_is_a_soft_warning() -> None:
    report = classify(dsn("452 4.2.2 Mailbox full", "4.2.2", action="delayed"))
    assert report.kind == "bounce"
    assert [(r.action, r.category, r.reason) for r in report.recipients] == [
        ("delayed", "soft", "delayed")
    ]


def test_a_dsn_whose_recipients_were_all_delivered_is_a_delivery_report() -> None:
    report = classify(dsn("250 2.0.0 Ok: queued", "2.0.0", action="relayed"))
    assert report.kind == "delivery_report"
    assert [r.action for r in report.recipients] == ["delivered"]


def test_a_global_delivery_status_part_is_read_like_a_dsn() -> None:
    raw = dsn("550 5.1.1 User unknown", "5.1.1").replace(
        b"message/delivery-status", b"message/global-delivery-status"
    )
    assert [r.category for r in classify(raw).recipients] == ["hard"]


# --- whose fault ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "diagnostic", "category", "reason"),
    [
        ("5.1.1", "550 5.1.1 <r@example.org>: Recipient address rejected: User unknown",
         "hard", "user_unknown"),
        ("5.7.1", "550 5.7.1 Message rejected as spam", "sender", "spam"),
        ("5.7.26", "550 5.7.26 This message does not pass DMARC", "sender", "authentication"),
        ("5.2.2", "552 5.2.2 Mailbox full", "soft", "mailbox_full"),
        ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
         "zen.spamhaus.org", "sender", "blocked"),
        ("5.7.1", "550-5.7.1 Our system has detected that this message is likely unsolicited "
         "mail", "sender", "spam"),
        ("5.4.1", "550 5.4.1 Recipient address rejected: Access denied", "hard", "user_unknown"),
        ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled", "hard",
         "mailbox_disabled"),
        ("5.4.4", "Host or domain name not found. Name service error for name=example.org "
         "type=A: Host not found", "hard", "no_such_domain"),
        ("5.0.0", "550 User unknown", "hard", "user_unknown"),
        ("4.4.1", "delivery temporarily suspended: connect to mx.example.org: Connection "
         "timed out", "soft", "expired"),
        ("5.7.1", "554 5.7.1 <r@example.org>: Relay access denied", "sender", "relaying"),
        ("5.7.1", "550 5.7.1 No such user", "hard", "user_unknown"),
        ("4.1.1", "450 4.1.1 User unknown in virtual mailbox table", "soft", "user_unknown"),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", "sender", "content"),
        ("4.7.0", "421 4.7.0 Try again later, closing connection (rate limit)", "sender",
         "rate_limited"),
        # RFC 5321's text for any 550: only a status naming a dead address makes it hard.
        ("5.0.0", "550 Requested action not taken: mailbox unavailable", "soft",
         "mailbox_unavailable"),
        ("5.1.1", "550 5.1.1 Requested action not taken: mailbox unavailable", "hard",
         "user_unknown"),
        ("5.0.0", "Local mailbox r@example.org is unavailable: user not found", "hard",
         "user_unknown"),
        ("5.4.6", "554 5.4.6 Hop count exceeded - possible mail loop", "soft", "loop"),
        # Refusals of our own envelope or client, whatever words follow: never the reader's.
        ("5.7.1", "554 5.7.1 <bounces+d1-2-x@mail.example.com>: Sender address rejected: "
         "Access denied", "sender", "policy"),
        ("5.1.8", "553 5.1.8 <bounces@mail.example.com>: Sender address rejected: Domain not "
         "found", "sender", "policy"),
        ("5.7.1", "550 5.7.1 <mx.example.com>: Helo command rejected: Host not found", "sender",
         "policy"),
        ("5.7.1", "550 5.7.1 Your IP is no longer allowed", "sender", "policy"),
        ("", "550 Recipient not found", "hard", "user_unknown"),
    ],
)  # fmt: skip
def test_the_category_comes_from_the_code_and_the_text_together(
    status: str, diagnostic: str, category: str, reason: str
) -> None:
    assert categorise(status, diagnostic) == (category, reason)


def test_an_unknown_permanent_failure_is_soft_not_hard() -> None:
    assert categorise("5.0.0", "550 Requested action aborted") == ("soft", "unknown")


def test_a_failed_recipient_with_a_temporary_status_is_soft() -> None:
    assert categorise("4.0.0", "451 Local error in processing") == ("soft", "expired")


# The standard library's own regex parser and op codes (private, so only in the tests).
_PARSER = importlib.import_module("re._parser")
_OP = importlib.import_module("re._constants")


def _first_characters(items: list[tuple[Any, Any]]) -> tuple[set[str] | None, bool]:
    """The characters a match of a parsed pattern can begin with (None: any), and whether it
    can match the empty string. Zero-width assertions are passed over: a superset is safe."""
    first: set[str] = set()
    for code, value in items:
        if code is _OP.LITERAL:
            return first | {chr(value)}, False
        if code is _OP.IN:
            for kind, item in value:
                if kind is _OP.LITERAL:
                    first.add(chr(item))
                elif kind is _OP.RANGE:
                    first.update(chr(c) for c in range(item[0], item[1] + 1))
                elif kind is _OP.CATEGORY and item is _OP.CATEGORY_DIGIT:
                    first.update("0123456789")
                else:
                    return None, False
            return first, False
        if code in (_OP.AT, _OP.ASSERT, _OP.ASSERT_NOT):
            continue
        if code is _OP.SUBPATTERN:
            alternatives = [list(value[3])]
        elif code is _OP.BRANCH:
            alternatives = [list(branch) for branch in value[1]]
        elif code in (_OP.MAX_REPEAT, _OP.MIN_REPEAT):
            alternatives = [list(value[2])] + ([[]] if value[0] == 0 else [])
        else:
            return None, False
        empty = False
        for alternative in alternatives:
            chars, nullable = _first_characters(alternative)
            if chars is None:
                return None, False
            first |= chars
            empty = empty or nullable or not alternative
        if not empty:
            return first, False
    return first, True


def test_every_rule_lists_every_character_its_matches_can_begin_with() -> None:
    for pattern, _, reason in RULES:
        gate = re.fullmatch(r"\[(.*?)\]\(\?<=\(\?=\(\?:(.*)\)\)\.\)", pattern.pattern, re.S)
        assert gate, reason
        starts = set(re.sub(r"\\(.)", r"\1", gate.group(1)))
        first, nullable = _first_characters(list(_PARSER.parse(gate.group(2))))
        assert first is not None, reason
        assert not nullable, reason
        assert first <= starts, (reason, "".join(sorted(first - starts)))


def test_a_real_spam_block_is_never_held_against_the_reader() -> None:
    [recipient] = corpus("bounceparser/spam-rejection43.msg").recipients
    assert (recipient.category, recipient.reason) == ("sender", "blocked")


def test_a_real_yahoo_disabled_account_is_hard() -> None:
    report = corpus("flufl/yahoo_03.txt")
    assert [(r.address, r.category) for r in report.recipients] == [("userx@example.com", "hard")]


# --- complaints, auto-replies, unsubscribes -------------------------------------------------


def test_an_arf_report_is_a_complaint_with_its_recipient_and_type() -> None:
    report = corpus("handmade/arf_jmrp_hotmail.eml")
    assert (report.kind, report.feedback_type) == ("complaint", "abuse")
    assert report.original_recipient == "reader42@hotmail.com"
    assert report.original_mail_from == "bounce+7.42.a1b2c3@bounces.news.example.com"
    assert report.original_message_id == "<7.42.a1b2c3d4e5f6@news.example.com>"


def test_an_out_of_office_reply_is_an_auto_reply_without_recipients() -> None:
    report = classify(plain("Out of Office: Your daily digest", Auto_Submitted="auto-replied"))
    assert (report.kind, report.recipients) == ("auto_reply", ())


def test_an_auto_reply_header_alone_makes_an_auto_reply() -> None:
    assert classify(plain("Re: Your daily digest", X_Autoreply="yes")).kind == "auto_reply"


def test_a_german_absence_notice_is_an_auto_reply() -> None:
    assert corpus("handmade/auto_reply_german.eml").kind == "auto_reply"


def test_an_exim_bounce_marked_auto_replied_is_still_a_bounce() -> None:
    assert corpus("flufl/exim_01.txt").kind == "bounce"


def test_mail_to_the_unsubscribe_address_is_an_unsubscribe_request() -> None:
    report = classify(plain("please stop", "Stop sending me this."), addressed_to_unsubscribe=True)
    assert (report.kind, report.from_address) == ("unsubscribe", "reader@example.org")
    assert report.body_text.strip() == "Stop sending me this."


def test_a_subject_starting_with_unsubscribe_is_an_unsubscribe_request() -> None:
    assert classify(plain("UNSUBSCRIBE daily")).kind == "unsubscribe"


def test_a_bounce_sent_to_the_unsubscribe_address_stays_a_bounce() -> None:
    raw = dsn("550 5.1.1 User unknown", "5.1.1")
    assert classify(raw, addressed_to_unsubscribe=True).kind == "bounce"


def test_an_ordinary_message_is_other() -> None:
    assert classify(plain("Lovely digest today")).kind == "other"


def test_the_subject_is_decoded_to_one_line() -> None:
    report = corpus("handmade/auto_reply_german.eml")
    assert report.subject == "Abwesenheitsnotiz: Ihr täglicher Überblick"


def test_report_json_holds_what_the_cli_prints() -> None:
    report = classify(dsn("550 5.1.1 User unknown", "5.1.1"))
    assert report_json(report, "b.eml") == {
        "file": "b.eml",
        "kind": "bounce",
        "recipients": [{"address": "reader@example.org", "status": "5.1.1",
                        "action": "failed", "category": "hard", "reason": "user_unknown"}],
        "original_message_id": "<12.345.abcdef012345@example.com>",
    }  # fmt: skip


# --- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x81\r\n\r\n\x00",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;",
        b"Content-Type: text/plain; charset=no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64",
        b"Subject: =?x-unknown?q?=FF?=\r\nFrom: <<<@>>>\r\n\r\nbody",
        b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%",
    ],
    ids=["empty", "garbage", "truncated-dsn", "bad-charset", "bad-headers", "bad-base64"],
)
def test_malformed_mail_never_raises(raw: bytes) -> None:
    assert classify(raw).kind in ("bounce", "other")


def test_a_ten_megabyte_message_is_read_and_noted_as_truncated() -> None:
    raw = dsn("550 5.1.1 User unknown", "5.1.1") + b"x" * (10 * 1024 * 1024)
    report = classify(raw)
    assert "truncated_input" in report.defects
    assert report.kind == "bounce"


def test_deeply_nested_returned_messages_never_raise() -> None:
    raw = b"Subject: inner\r\n\r\nbody\r\n"
    for _ in range(300):
        raw = b"Content-Type: message/rfc822\r\n\r\n" + raw
    report = classify(b"From: MAILER-DAEMON@example.net\r\n" + raw)
    assert "nested_too_deep" in report.defects


# --- the corpus ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    return {name: classify((CORPUS / name).read_bytes()) for name in EXPECTED}


def expected_recipients(kind: str | None = None) -> list[tuple[str, str, str]]:
    """(file, address, category) of every failed recipient in the corpus's truth."""
    return [
        (name, r["address"], r["category"])
        for name, truth in EXPECTED.items()
        for r in truth["recipients"]  # type: ignore[attr-defined]
        if kind is None or truth["kind"] == kind
    ]


def test_the_corpus_is_all_there() -> None:
    on_disk = {
        str(p.relative_to(CORPUS))
        for p in CORPUS.glob("*/*")
        if p.name not in ("LICENSE", "README.md")
    }
    assert on_disk == set(EXPECTED)


def test_95_percent_of_failed_recipients_are_found(reports: dict[str, Report]) -> None:
    wanted = expected_recipients()
    found = [
        (name, address)
        for name, address, _ in wanted
        if address.lower() in {r.address.lower() for r in reports[name].recipients}
    ]
    assert len(found) / len(wanted) >= 0.95


def test_95_percent_of_hard_verdicts_are_truly_dead_addresses(
    reports: dict[str, Report],
) -> None:
    truth = {(name, a.lower()): category for name, a, category in expected_recipients()}
    verdicts = [
        truth.get((name, r.address.lower())) == "hard"
        for name, report in reports.items()
        for r in report.recipients
        if r.category == "hard" and r.address
    ]
    assert sum(verdicts) / len(verdicts) >= 0.95


def test_every_complaint_is_recognised(reports: dict[str, Report]) -> None:
    complaints = [name for name, truth in EXPECTED.items() if truth["kind"] == "complaint"]
    assert complaints
    assert all(reports[name].kind == "complaint" for name in complaints)


def test_no_auto_reply_is_taken_for_a_bounce(reports: dict[str, Report]) -> None:
    auto_replies = [name for name, truth in EXPECTED.items() if truth["kind"] == "auto_reply"]
    assert [name for name in auto_replies if reports[name].kind != "auto_reply"] == []


def test_every_corpus_message_is_read_without_an_internal_error(
    reports: dict[str, Report],
) -> None:
    assert [
        n for n, r in reports.items() if any(d.startswith("unreadable") for d in r.defects)
    ] == []
