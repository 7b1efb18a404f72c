"""Provider webhook bodies, read: which events are kept, by which id, and what each says about
its reader. (Signatures and the whole request are tested in tests/web/test_webhooks.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from newsletter.inbound.process import Reader
from newsletter.inbound.providers import ProviderEvent, ProviderRefused, mailgun, postmark, ses
from newsletter.inbound.providers import sendgrid as sg
from newsletter.inbound.providers.ses import DEFAULT_CERTIFICATE_HOSTS, SnsMessage
from newsletter.models import MailEventKind

ANN = "ann@example.com"


def verdicts(events: list[ProviderEvent]) -> list[tuple[str, str, str, str]]:
    """(kind, category, reason, action) of every signal, in order."""
    return [
        (s.kind.value, s.category, s.reason, s.action) for event in events for s in event.signals
    ]


# --- SES --------------------------------------------------------------------------------------


def ses_notification(note: dict[str, Any], message_id: str = "sns-1") -> SnsMessage:
    return SnsMessage(
        {"Type": "Notification", "MessageId": message_id, "TopicArn": "arn:t",
         "Message": json.dumps(note), "Timestamp": "2025-05-16T07:29:58.123Z",
         "SignatureVersion": "1"}
    )  # fmt: skip


def ses_bounce(
    bounce_type: str, sub_type: str, status: str = "", diagnostic: str = ""
) -> SnsMessage:
    recipient = {"emailAddress": ANN, "action": "failed", "status": status,
                 "diagnosticCode": diagnostic}  # fmt: skip
    return ses_notification(
        {"notificationType": "Bounce",
         "bounce": {"bounceType": bounce_type, "bounceSubType": sub_type,
                    "bouncedRecipients": [recipient]},
         "mail": {"headers": [{"name": "Message-ID", "value": "<1.2.abc@news.example.com>"}]}}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("bounce_type", "sub_type", "status", "diagnostic", "category", "reason"),
    [
        ("Permanent", "General", "5.1.1", "smtp; 550 5.1.1 user unknown", "hard", "user_unknown"),
        ("Permanent", "NoEmail", "5.0.0", "smtp; 550 5.0.0 go away", "hard", "user_unknown"),
        ("Permanent", "Suppressed", "5.1.1", "Amazon SES has suppressed sending to this address",
         "hard", "suppressed"),
        ("Permanent", "OnAccountSuppressionList", "", "", "hard", "suppressed"),
        ("Permanent", "General", "5.7.1", "smtp; 550 5.7.1 Message rejected as spam",
         "sender", "spam"),
        ("Transient", "MailboxFull", "5.2.2", "smtp; 552 5.2.2 Mailbox full", "soft",
         "mailbox_full"),
        ("Transient", "MessageTooLarge", "5.3.4", "smtp; 552 too big", "sender", "content"),
        ("Transient", "ContentRejected", "5.3.0", "smtp; 554 rejected", "sender", "content"),
        ("Transient", "AttachmentRejected", "", "", "sender", "content"),
        ("Transient", "General", "5.1.1", "smtp; 550 5.1.1 user unknown", "soft",
         "user_unknown"),
        ("Undetermined", "Undetermined", "", "", "soft", "unknown"),
    ],
)  # fmt: skip
def test_ses_bounce_category_combines_the_sub_type_and_the_reply(
    bounce_type: str, sub_type: str, status: str, diagnostic: str, category: str, reason: str
) -> None:
    events = ses.events(ses_bounce(bounce_type, sub_type, status, diagnostic), b"raw")

    assert verdicts(events) == [("bounce", category, reason, "failed")]


def test_ses_bounce_trusts_the_address_ses_names() -> None:
    [event] = ses.events(ses_bounce("Permanent", "General", "5.1.1"), b"raw")

    assert [(s.address, s.address_trusted) for s in event.signals] == [(ANN, True)]


def test_ses_event_is_named_by_the_sns_message_id() -> None:
    [event] = ses.events(ses_bounce("Permanent", "General"), b"raw")

    assert (event.event_id, event.raw) == ("sns-1", b"raw")


def test_ses_bounce_carries_our_message_id_from_the_original_headers() -> None:
    [event] = ses.events(ses_bounce("Permanent", "General"), b"raw")

    assert event.message_id == "<1.2.abc@news.example.com>"


def test_ses_complaint_is_a_complaint_from_each_recipient() -> None:
    note = {"notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": ANN}],
                          "complaintFeedbackType": "abuse"}}  # fmt: skip

    [event] = ses.events(ses_notification(note), b"raw")

    assert [(s.kind, s.address, s.reason) for s in event.signals] == [
        (MailEventKind.COMPLAINT, ANN, "abuse")
    ]


def test_ses_delivery_notification_is_not_kept() -> None:
    assert ses.events(ses_notification({"notificationType": "Delivery"}), b"raw") == []


def test_ses_message_that_is_not_a_notification_is_a_400() -> None:
    message = SnsMessage({**ses_notification({}).fields, "Message": "hello"})

    with pytest.raises(ProviderRefused) as refused:
        ses.events(message, b"raw")

    assert refused.value.status_code == 400


def test_sns_canonical_string_leaves_out_an_absent_subject() -> None:
    message = SnsMessage(
        {"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "hi",
         "Timestamp": "ts", "SignatureVersion": "1", "Signature": "x"}
    )  # fmt: skip

    assert (
        message.canonical()
        == b"Message\nhi\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
    )


def test_sns_unsigned_message_is_refused_before_it_is_read() -> None:
    with pytest.raises(ProviderRefused) as refused:
        ses.read(b'{"Type": "Notification"}')

    assert refused.value.status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
    ],
)
def test_certificate_url_on_an_sns_host_is_allowed(url: str) -> None:
    assert ses.certificate_url(url, DEFAULT_CERTIFICATE_HOSTS).host.startswith("sns.")


SNS = "https://sns.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    "url",
    [
        f"{SNS}/cert.pem",  # not where SNS keeps certificates
        f"{SNS}/SimpleNotificationService-ABC.pem",  # SNS names them in lower-case hex
        f"{SNS}/SimpleNotificationService-.pem",
        f"{SNS}/SimpleNotificationService-abc.pem.exe",
        f"{SNS}/bucket/SimpleNotificationService-abc.pem",
        f"{SNS}/SimpleNotificationService-abc.pem?versionId=2",
        f"{SNS}/SimpleNotificationService-abc.pem?",
        f"{SNS}/SimpleNotificationService-abc.pem#key",
        f"{SNS}/SimpleNotificationService-%61bc.pem",  # an encoded variant of the same path
        f"{SNS}:8443/SimpleNotificationService-abc.pem",
        f"{SNS}:80/SimpleNotificationService-abc.pem",
    ],
)
def test_certificate_url_off_sns_certificate_path_or_port_is_refused(url: str) -> None:
    with pytest.raises(ProviderRefused) as refused:
        ses.certificate_url(url, DEFAULT_CERTIFICATE_HOSTS)

    assert refused.value.status_code == 403


def test_certificate_url_may_name_the_default_port() -> None:
    url = f"{SNS}:443/SimpleNotificationService-abc.pem"

    assert str(ses.certificate_url(url, DEFAULT_CERTIFICATE_HOSTS)) == (
        f"{SNS}/SimpleNotificationService-abc.pem"
    )


def test_certificate_url_from_the_test_loopback_still_needs_the_sns_path() -> None:
    loopback = r"127\.0\.0\.1"
    url = "http://127.0.0.1:8080/SimpleNotificationService-0a1b.pem"

    assert ses.certificate_url(url, loopback).port == 8080
    with pytest.raises(ProviderRefused):
        ses.certificate_url("http://127.0.0.1:8080/c.pem", loopback)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",  # not https
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/cert.pem",
        "https://s3.amazonaws.com/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://127.0.0.1/cert.pem",
        "not a url",
    ],
)
def test_certificate_url_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(ProviderRefused) as refused:
        ses.allowed_url(url, DEFAULT_CERTIFICATE_HOSTS)

    assert refused.value.status_code == 403


def test_plain_http_is_allowed_only_from_loopback_named_by_the_pattern() -> None:
    assert ses.allowed_url("http://127.0.0.1:8080/c.pem", r"127\.0\.0\.1").port == 8080
    with pytest.raises(ProviderRefused):
        ses.allowed_url("http://localhost:8080/c.pem", r"localhost")


# --- SendGrid ---------------------------------------------------------------------------------


def sendgrid(*events: dict[str, Any]) -> list[ProviderEvent]:
    batch = [{"email": ANN, "sg_event_id": f"e{i}", **event} for i, event in enumerate(events)]
    return sg.parse(json.dumps(batch).encode())


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"event": "bounce", "type": "bounce", "status": "5.1.1",
          "reason": "550 5.1.1 No such user"}, ("bounce", "hard", "user_unknown", "failed")),
        ({"event": "bounce", "type": "blocked", "status": "5.0.0",
          "reason": "550 5.0.0 Mailbox unavailable"}, ("bounce", "sender", "blocked", "failed")),
        ({"event": "bounce", "type": "bounce", "status": "5.0.0", "reason": "550 nope",
          "bounce_classification": "Reputation"}, ("bounce", "sender", "blocked", "failed")),
        ({"event": "bounce", "type": "bounce", "status": "5.0.0", "reason": "550 nope",
          "bounce_classification": "Invalid Address"},
         ("bounce", "hard", "user_unknown", "failed")),
        ({"event": "deferred", "response": "451 4.7.1 try later"},
         ("bounce", "soft", "delayed", "delayed")),
        ({"event": "dropped", "reason": "Bounced Address"},
         ("bounce", "hard", "suppressed", "failed")),
        ({"event": "dropped", "reason": "Spam Content (if spam checker app enabled)"},
         ("bounce", "sender", "content", "failed")),
        ({"event": "spamreport"}, ("complaint", "", "spamreport", "failed")),
        ({"event": "group_unsubscribe", "asm_group_id": 1},
         ("unsubscribe", "", "group_unsubscribe", "failed")),
    ],
)  # fmt: skip
def test_sendgrid_event_says_what_its_type_and_reply_say(
    event: dict[str, Any], expected: tuple[str, str, str, str]
) -> None:
    assert verdicts(sendgrid(event)) == [expected]


def test_sendgrid_deliveries_opens_and_clicks_are_not_kept() -> None:
    assert sendgrid({"event": "processed"}, {"event": "delivered"}, {"event": "open"}) == []


def test_sendgrid_events_are_named_by_their_sg_event_id() -> None:
    events = sendgrid({"event": "delivered"}, {"event": "spamreport"}, {"event": "bounce"})

    assert [e.event_id for e in events] == ["e1", "e2"]


def test_sendgrid_global_unsubscribe_leaves_every_list_and_a_group_one_its_list() -> None:
    events = sendgrid({"event": "unsubscribe"}, {"event": "group_unsubscribe"})

    assert [e.every_list for e in events] == [True, False]


def test_sendgrid_passes_our_message_id_back_as_smtp_id() -> None:
    [event] = sendgrid({"event": "bounce", "smtp-id": "<1.2.abc@news.example.com>"})

    assert event.message_id == "<1.2.abc@news.example.com>"


# --- Mailgun ----------------------------------------------------------------------------------


def failed(severity: str, reason: str, code: int, message: str) -> dict[str, Any]:
    return {
        "event-data": {
            "id": "mg-1", "event": "failed", "severity": severity, "reason": reason,
            "recipient": ANN, "delivery-status": {"code": code, "message": message},
            "message": {"headers": {"message-id": "1.2.abc@news.example.com"}},
        }
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (failed("permanent", "bounce", 550, "5.1.1 The email account does not exist"),
         ("bounce", "hard", "user_unknown", "failed")),
        (failed("temporary", "generic", 452, "4.2.2 The email account is over quota"),
         ("bounce", "soft", "mailbox_full", "delayed")),
        (failed("permanent", "suppress-bounce", 605, "Not delivering to previously bounced"),
         ("bounce", "hard", "suppressed", "failed")),
        (failed("permanent", "espblock", 550, "Sending domain blocked"),
         ("bounce", "sender", "blocked", "failed")),
        (failed("permanent", "old", 0, "Too old"), ("bounce", "soft", "expired", "failed")),
        ({"event-data": {"id": "mg-1", "event": "complained", "recipient": ANN}},
         ("complaint", "", "complained", "failed")),
    ],
)  # fmt: skip
def test_mailgun_event_says_what_its_severity_and_reply_say(
    body: dict[str, Any], expected: tuple[str, str, str, str]
) -> None:
    assert verdicts(mailgun.parse(body, b"raw")) == [expected]


def test_mailgun_event_is_named_by_its_id_and_carries_our_message_id() -> None:
    [event] = mailgun.parse(failed("permanent", "bounce", 550, "5.1.1 no"), b"raw")

    assert (event.event_id, event.message_id) == ("mg-1", "1.2.abc@news.example.com")


def test_mailgun_event_without_an_id_is_a_400() -> None:
    with pytest.raises(ProviderRefused) as refused:
        mailgun.parse({"event-data": {"event": "failed"}}, b"raw")

    assert refused.value.status_code == 400


def test_mailgun_delivered_is_not_kept() -> None:
    assert mailgun.parse({"event-data": {"id": "mg-1", "event": "delivered"}}, b"raw") == []


# --- Postmark ---------------------------------------------------------------------------------


def postmark_record(record: dict[str, Any]) -> list[ProviderEvent]:
    return postmark.parse(json.dumps(record).encode())


def bounce(bounce_type: str, details: str = "") -> dict[str, Any]:
    return {"RecordType": "Bounce", "ID": 42, "Type": bounce_type, "Email": ANN,
            "Details": details, "Description": "unknown user, mailbox not found"}  # fmt: skip


@pytest.mark.parametrize(
    ("bounce_type", "details", "expected"),
    [
        ("HardBounce", "smtp;550 5.1.1 The email account does not exist",
         ("bounce", "hard", "user_unknown", "failed")),
        ("HardBounce", "", ("bounce", "hard", "user_unknown", "failed")),
        ("HardBounce", "smtp;550 5.7.1 Message rejected as spam",
         ("bounce", "sender", "spam", "failed")),
        ("BadEmailAddress", "", ("bounce", "hard", "user_unknown", "failed")),
        ("SoftBounce", "smtp;452 4.2.2 Mailbox full", ("bounce", "soft", "mailbox_full", "failed")),
        ("Transient", "smtp;421 try again later", ("bounce", "soft", "expired", "delayed")),
        ("Blocked", "smtp;554 client host blocked", ("bounce", "sender", "blocked", "failed")),
        ("SpamNotification", "", ("bounce", "sender", "spam", "failed")),
        ("DMARCPolicy", "", ("bounce", "sender", "authentication", "failed")),
        ("SpamComplaint", "", ("complaint", "", "spam_complaint", "failed")),
        ("Unsubscribe", "", ("unsubscribe", "", "unsubscribe", "failed")),
    ],
)  # fmt: skip
def test_postmark_bounce_says_what_its_type_and_details_say(
    bounce_type: str, details: str, expected: tuple[str, str, str, str]
) -> None:
    assert verdicts(postmark_record(bounce(bounce_type, details))) == [expected]


def test_postmark_auto_responder_is_no_bounce() -> None:
    [event] = postmark_record(bounce("AutoResponder"))

    assert event.signals == []


def test_postmark_bounce_is_named_by_its_id() -> None:
    [event] = postmark_record(bounce("HardBounce"))

    assert event.event_id == "42"


def subscription_change(origin: str, reason: str, suppress: bool = True) -> dict[str, Any]:
    return {"RecordType": "SubscriptionChange", "MessageID": "883953f4", "ServerID": 23,
            "MessageStream": "outbound", "ChangedAt": "2025-05-16T07:29:58Z", "Recipient": ANN,
            "Origin": origin, "SuppressSending": suppress, "SuppressionReason": reason}  # fmt: skip


def test_postmark_reader_unsubscribing_leaves_every_list() -> None:
    [event] = postmark_record(subscription_change("Recipient", "ManualSuppression"))

    assert verdicts([event]) == [("unsubscribe", "", "manual_suppression", "failed")]
    assert event.every_list


def test_postmark_suppression_by_us_is_recorded_without_acting() -> None:
    [event] = postmark_record(subscription_change("Customer", "ManualSuppression"))

    assert event.signals == []


def test_postmark_subscription_change_is_named_by_what_it_changed() -> None:
    [event] = postmark_record(subscription_change("Recipient", "HardBounce"))

    assert event.event_id == f"subscription-change:883953f4:{ANN}:2025-05-16T07:29:58Z:True"


def test_postmark_bounce_without_an_id_is_a_400() -> None:
    with pytest.raises(ProviderRefused) as refused:
        postmark_record({"RecordType": "Bounce", "Type": "HardBounce", "Email": ANN})

    assert refused.value.status_code == 400


# --- what our Message-ID adds -----------------------------------------------------------------


def test_a_message_id_names_the_reader_of_a_one_recipient_event() -> None:
    [event] = sendgrid({"event": "bounce", "type": "bounce", "status": "5.1.1"})

    [signal] = event.about(Reader(subscriber_id=7, edition_id=3, list_id=2)).signals

    assert (signal.subscriber_id, signal.edition_id, signal.list_id) == (7, 3, 2)


def test_a_message_id_names_only_the_edition_of_a_many_recipient_event() -> None:
    note = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": ANN}, {"emailAddress": "bob@example.com"}]
        },
    }
    [event] = ses.events(ses_notification(note), b"raw")  # fmt: skip

    signals = event.about(Reader(subscriber_id=7, edition_id=3, list_id=2)).signals

    assert [(s.subscriber_id, s.edition_id) for s in signals] == [(None, 3), (None, 3)]


def test_a_global_unsubscribe_stays_global_when_the_message_names_a_list() -> None:
    [event] = sendgrid({"event": "unsubscribe"})

    [signal] = event.about(Reader(subscriber_id=7, edition_id=3, list_id=2)).signals

    assert signal.list_id is None
