"""Provider webhooks end to end: real signatures made here with real keys, SNS's signing
certificate served by a real local HTTP server, the app on the test database.

Each test sends what the provider sends (the documented payload shapes), then looks at what a
reader's next edition would do: blocked readers are not in its audience, complainers are off
every list, and readers whose mail was refused for our own reasons are still in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import audience_size
from newsletter.delivery.prepared import prepare_edition
from newsletter.editions.lifecycle import start_sending
from newsletter.inbound.intake import SPENT_SOURCE_SUFFIX
from newsletter.models import (
    Delivery,
    Edition,
    InboundMessage,
    MailEvent,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions.service import Signup, find_subscriber, import_subscribers
from tests.factories import edition_with_readers
from tests.feed_server import Answer, FeedServer
from tests.web.conftest import AppFactory, make_list

ANN = "ann@example.com"
BOB = "bob@example.com"
TOPIC = "arn:aws:sns:us-east-1:123456789012:newsletter-bounces"
LOCAL_HOSTS = r"127\.0\.0\.1"  # the test's certificate server; production allows SNS only
CERTIFICATE_PATH = "/SimpleNotificationService-7e57.pem"  # where SNS keeps certificates
MAILGUN_KEY = "key-0123456789abcdef"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark", "correct horse"


# --- the world: readers, an edition being sent to them --------------------------------------


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, settings: Settings, now: datetime
) -> Edition:
    """Today's daily edition, being sent to Ann and Bob; Ann also reads the tech list."""
    edition = edition_with_readers(session, daily_list, [ANN, BOB], now=now, settings=settings)
    tech = make_list(session, "tech", "Shortlysts Tech")
    import_subscribers(session, tech, [Signup(ANN)], now=now, source="test")
    start_sending(session, edition.id, now=now)
    session.commit()
    return edition


def reader(session: Session, address: str = ANN) -> Subscriber:
    session.expire_all()
    found = find_subscriber(session, address)
    assert found is not None
    return found


def lists_of(session: Session, address: str = ANN) -> set[SubscriptionStatus]:
    subscriber = reader(session, address)
    return set(
        session.scalars(
            select(Subscription.status).where(Subscription.subscriber_id == subscriber.id)
        )
    )


def audience(session: Session, edition: Edition) -> int:
    """How many readers a send of the edition would reach now."""
    session.expire_all()
    return audience_size(session, edition)


def stored_events(session: Session) -> int:
    """Provider events stored (the Mailgun signature tokens remembered beside them are not)."""
    session.expire_all()
    events = select(func.count()).where(~InboundMessage.source.endswith(SPENT_SOURCE_SUFFIX))
    return session.scalar(events) or 0


def events(session: Session) -> list[MailEvent]:
    session.expire_all()
    return list(session.scalars(select(MailEvent).order_by(MailEvent.id)))


def our_message_id(session: Session, edition: Edition, settings: Settings, now: datetime) -> str:
    """The signed Message-ID of the edition's message to Ann."""
    delivery = session.scalar(
        select(Delivery).where(
            Delivery.edition_id == edition.id, Delivery.subscriber_id == reader(session).id
        )
    )
    assert delivery is not None
    return prepare_edition(edition, settings, now=now).message_id(delivery.id)


# --- SES through SNS --------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    key: rsa.RSAPrivateKey
    certificate: bytes  # PEM


@pytest.fixture(scope="module")
def sns_signer() -> Signer:
    """A self-signed certificate standing in for SNS's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2034, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return Signer(key, certificate.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def sns_server(sns_signer: Signer) -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.serve(CERTIFICATE_PATH, Answer(200, sns_signer.certificate))
        yield server


def sns(
    signer: Signer,
    certificate_url: str,
    message: str,
    *,
    kind: str = "Notification",
    version: str = "1",
    message_id: str = "",
    topic: str = TOPIC,
    **extra: str,
) -> dict[str, str]:
    """An SNS message, signed as SNS documents: "name\\nvalue\\n" for each signed field."""
    fields = {
        "Type": kind,
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": "2025-05-16T07:29:58.123Z",
        **extra,
    }
    if kind == "Notification":
        order = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        order = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    canonical = "".join(f"{name}\n{fields[name]}\n" for name in order if name in fields)
    # SignatureVersion 1 is SHA1withRSA: SNS's choice, which we must check, not ours.
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signature = signer.key.sign(canonical.encode(), padding.PKCS1v15(), digest)
    return {
        **fields,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": certificate_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def ses_bounce(
    bounce_type: str = "Permanent",
    sub_type: str = "General",
    *,
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <ann@example.com>: Recipient address rejected: "
    "User unknown in virtual mailbox table",
    message_id: str = "<original@news.example.com>",
) -> str:
    """SES's bounce notification (the shape of AWS's documented example)."""
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": sub_type,
                "bouncedRecipients": [
                    {"emailAddress": ANN, "action": "failed", "status": status,
                     "diagnosticCode": diagnostic},
                ],
                "timestamp": "2025-05-16T07:29:57.000Z",
                "feedbackId": "0100017d-bounce-feedback",
                "reportingMTA": "dsn; a27-23.smtp-out.us-west-2.amazonses.com",
            },
            "mail": {
                "timestamp": "2025-05-16T07:29:50.000Z",
                "source": "digest@shortlysts.example.com",
                "messageId": "0100017d-ses-own-id",
                "destination": [ANN],
                "headersTruncated": False,
                "headers": [
                    {"name": "From", "value": "Shortlysts <digest@shortlysts.example.com>"},
                    {"name": "To", "value": ANN},
                    {"name": "Message-ID", "value": message_id},
                ],
                "commonHeaders": {"messageId": message_id, "to": [ANN]},
            },
        }
    )  # fmt: skip


def ses_complaint() -> str:
    return json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": ANN}],
                "timestamp": "2025-05-16T07:29:57.000Z",
                "feedbackId": "0100017d-complaint-feedback",
                "complaintFeedbackType": "abuse",
                "userAgent": "Yahoo!-Mail-Feedback/2.0",
            },
            "mail": {"messageId": "0100017d-ses-own-id", "destination": [ANN], "headers": []},
        }
    )


@pytest.fixture
def ses_client(make_client: AppFactory) -> TestClient:
    return make_client(webhook_ses_topic_arns=TOPIC, webhook_ses_certificate_hosts=LOCAL_HOSTS)


def post_sns(client: TestClient, message: dict[str, str]) -> Response:
    headers = {"x-amz-sns-message-type": message["Type"], "content-type": "text/plain"}
    return client.post("/webhooks/ses", content=json.dumps(message), headers=headers)


def test_ses_hard_bounce_blocks_the_reader_and_the_next_send_skips_them(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_bounce())

    response = post_sns(ses_client, message)

    assert response.json() == {"recorded": 1, "duplicates": 0}
    assert reader(session).status == SubscriberStatus.BLOCKED
    assert "5.1.1" in reader(session).blocked_reason
    assert audience(session, edition) == 1  # Bob only


def test_ses_signature_version_2_is_verified_with_sha256(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_bounce(), version="2")

    assert post_sns(ses_client, message).json() == {"recorded": 1, "duplicates": 0}
    assert reader(session).status == SubscriberStatus.BLOCKED


def test_ses_content_rejected_leaves_the_reader_subscribed(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    bounce = ses_bounce(
        "Transient", "ContentRejected", status="5.3.0",
        diagnostic="smtp; 554 5.3.0 Message content rejected",
    )  # fmt: skip
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), bounce)

    assert post_sns(ses_client, message).json() == {"recorded": 1, "duplicates": 0}
    assert reader(session).status == SubscriberStatus.ACTIVE
    assert [(e.category, e.outcome) for e in events(session)] == [("sender", "counted")]
    assert audience(session, edition) == 2


def test_ses_complaint_unsubscribes_the_reader_from_every_list(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_complaint())

    assert post_sns(ses_client, message).json() == {"recorded": 1, "duplicates": 0}
    assert lists_of(session) == {SubscriptionStatus.UNSUBSCRIBED}
    assert reader(session).status == SubscriberStatus.BLOCKED


def test_ses_notification_delivered_twice_is_recorded_once(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_bounce())
    post_sns(ses_client, message)

    again = post_sns(ses_client, message)

    assert again.json() == {"recorded": 0, "duplicates": 1}
    assert len(events(session)) == 1


def test_ses_bounce_naming_our_message_id_is_counted_against_its_edition(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition, settings: Settings, now: datetime,
) -> None:  # fmt: skip
    ours = our_message_id(session, edition, settings, now)
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_bounce(message_id=ours))

    post_sns(ses_client, message)

    [event] = events(session)
    assert (event.edition_id, event.list_id, event.subscriber_id) == (
        edition.id, edition.list_id, reader(session).id,
    )  # fmt: skip


def test_ses_signing_certificate_is_fetched_once(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    url = sns_server.url(CERTIFICATE_PATH)
    post_sns(ses_client, sns(sns_signer, url, ses_bounce()))
    post_sns(ses_client, sns(sns_signer, url, ses_complaint()))

    assert [path for path, _ in sns_server.requests] == [CERTIFICATE_PATH]
    assert len(events(session)) == 2


def test_ses_tampered_message_is_refused_and_changes_nothing(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_complaint())
    message["Message"] = ses_bounce()  # a different notification under the same signature

    response = post_sns(ses_client, message)

    assert response.status_code == 403
    assert "signature does not match" in response.json()["detail"]
    assert stored_events(session) == 0
    assert reader(session).status == SubscriberStatus.ACTIVE


def test_ses_certificate_on_a_host_not_allowed_is_refused_without_a_fetch(
    make_client: AppFactory, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    # The production pattern: SNS's own hosts, so this local server is not one of them.
    client = make_client(webhook_ses_topic_arns=TOPIC)
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_bounce())

    response = post_sns(client, message)

    assert response.status_code == 403
    assert "is not an SNS host" in response.json()["detail"]
    assert sns_server.requests == []
    assert stored_events(session) == 0


def test_ses_topic_not_configured_is_refused_without_a_fetch(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    other = "arn:aws:sns:us-east-1:999999999999:someone-else"
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), ses_bounce(), topic=other)

    response = post_sns(ses_client, message)

    assert response.status_code == 403
    assert other in response.json()["detail"]
    assert sns_server.requests == []


def test_ses_subscription_confirmation_fetches_the_subscribe_url(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session
) -> None:
    confirm = f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37"
    sns_server.serve(confirm, Answer(200, b"<ConfirmSubscriptionResponse/>"))
    message = sns(
        sns_signer, sns_server.url(CERTIFICATE_PATH), "You have chosen to subscribe ...",
        kind="SubscriptionConfirmation", SubscribeURL=sns_server.url(confirm), Token="2336412f37",
    )  # fmt: skip

    response = post_sns(ses_client, message)

    assert response.json() == {"recorded": 0, "duplicates": 0}
    assert [path for path, _ in sns_server.requests] == [CERTIFICATE_PATH, confirm]


def test_ses_notification_that_trips_up_a_parser_is_a_400_and_changes_nothing(
    ses_client: TestClient, sns_signer: Signer, sns_server: FeedServer, session: Session,
    edition: Edition,
) -> None:  # fmt: skip
    # Signed by SNS, but its Message nests deeper than Python's JSON reader recurses: a
    # RecursionError no parser foresaw. It is the body's fault, not a server error.
    nested = "[" * 5_000 + "]" * 5_000
    message = sns(sns_signer, sns_server.url(CERTIFICATE_PATH), nested)

    response = post_sns(ses_client, message)

    assert response.status_code == 400
    assert response.json() == {"detail": "The body could not be read as a ses webhook."}
    assert stored_events(session) == 0


def test_ses_malformed_body_is_a_400(ses_client: TestClient, session: Session) -> None:
    response = ses_client.post("/webhooks/ses", content=b'{"Type": "Notification",')

    assert response.status_code == 400
    assert response.json() == {"detail": "The body is not JSON: SNS sends JSON."}


# --- SendGrid ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def sendgrid_client(
    make_client: AppFactory, sendgrid_key: ec.EllipticCurvePrivateKey
) -> TestClient:
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return make_client(webhook_sendgrid_public_key=base64.b64encode(public).decode())


def sendgrid_event(event: str, **fields: Any) -> dict[str, Any]:
    """One event of SendGrid's Event Webhook, as its documentation shows them."""
    return {
        "email": ANN,
        "timestamp": 1747380598,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "category": ["digest"],
        "sg_event_id": f"sg-{event}-{uuid.uuid4().hex[:12]}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **fields,
    }


def post_sendgrid(
    client: TestClient, key: ec.EllipticCurvePrivateKey, body: bytes, *, timestamp: int
) -> Response:
    signature = key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "content-type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
    }
    return client.post("/webhooks/sendgrid", content=body, headers=headers)


def sendgrid_batch(*batch: dict[str, Any]) -> bytes:
    return json.dumps(list(batch)).encode()


HARD = {
    "type": "bounce",
    "status": "5.1.1",
    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
}


def test_sendgrid_hard_bounce_blocks_the_reader(
    sendgrid_client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey, session: Session,
    edition: Edition, now: datetime,
) -> None:  # fmt: skip
    body = sendgrid_batch(sendgrid_event("bounce", **HARD))

    response = post_sendgrid(sendgrid_client, sendgrid_key, body, timestamp=int(now.timestamp()))

    assert response.json() == {"recorded": 1, "duplicates": 0}
    assert reader(session).status == SubscriberStatus.BLOCKED
    assert audience(session, edition) == 1


def test_sendgrid_blocked_leaves_the_reader_subscribed(
    sendgrid_client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey, session: Session,
    edition: Edition, now: datetime,
) -> None:  # fmt: skip
    blocked = sendgrid_event(
        "bounce", type="blocked", status="5.7.1",
        reason="550 5.7.1 Our system has detected an unusual rate of unsolicited mail",
    )  # fmt: skip

    post_sendgrid(
        sendgrid_client, sendgrid_key, sendgrid_batch(blocked), timestamp=int(now.timestamp())
    )

    assert reader(session).status == SubscriberStatus.ACTIVE
    assert [(e.category, e.outcome) for e in events(session)] == [("sender", "counted")]


def test_sendgrid_spam_report_unsubscribes_the_reader_from_every_list(
    sendgrid_client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey, session: Session,
    edition: Edition, now: datetime,
) -> None:  # fmt: skip
    body = sendgrid_batch(sendgrid_event("delivered"), sendgrid_event("spamreport"))

    response = post_sendgrid(sendgrid_client, sendgrid_key, body, timestamp=int(now.timestamp()))

    assert response.json() == {"recorded": 1, "duplicates": 0}  # deliveries are not kept
    assert lists_of(session) == {SubscriptionStatus.UNSUBSCRIBED}


def test_sendgrid_event_delivered_twice_is_recorded_once(
    sendgrid_client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey, session: Session,
    edition: Edition, now: datetime,
) -> None:  # fmt: skip
    body = sendgrid_batch(sendgrid_event("bounce", **HARD))
    post_sendgrid(sendgrid_client, sendgrid_key, body, timestamp=int(now.timestamp()))

    again = post_sendgrid(sendgrid_client, sendgrid_key, body, timestamp=int(now.timestamp()) + 60)

    assert again.json() == {"recorded": 0, "duplicates": 1}
    assert len(events(session)) == 1


def test_sendgrid_signature_by_another_key_is_refused_and_changes_nothing(
    sendgrid_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    body = sendgrid_batch(sendgrid_event("bounce", **HARD))

    response = post_sendgrid(sendgrid_client, forger, body, timestamp=int(now.timestamp()))

    assert response.status_code == 403
    assert stored_events(session) == 0
    assert reader(session).status == SubscriberStatus.ACTIVE


def test_sendgrid_request_signed_long_ago_is_refused(
    sendgrid_client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey, session: Session,
    edition: Edition, now: datetime,
) -> None:  # fmt: skip
    body = sendgrid_batch(sendgrid_event("bounce", **HARD))

    response = post_sendgrid(
        sendgrid_client, sendgrid_key, body, timestamp=int(now.timestamp()) - 3600
    )

    assert response.status_code == 403
    assert "minutes from now" in response.json()["detail"]
    assert stored_events(session) == 0


def test_sendgrid_signed_body_that_is_not_an_event_list_is_a_400(
    sendgrid_client: TestClient, sendgrid_key: ec.EllipticCurvePrivateKey, session: Session,
    now: datetime,
) -> None:  # fmt: skip
    response = post_sendgrid(
        sendgrid_client, sendgrid_key, b'{"event": "bounce"}', timestamp=int(now.timestamp())
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "SendGrid's Event Webhook sends a JSON array of events."}


# --- Mailgun ----------------------------------------------------------------------------------


@pytest.fixture
def mailgun_client(make_client: AppFactory) -> TestClient:
    return make_client(webhook_mailgun_signing_key=MAILGUN_KEY)


def mailgun_signature(now: datetime, key: str = MAILGUN_KEY) -> dict[str, str]:
    """Mailgun's signature block: a fresh 50-character token, signed with its timestamp."""
    timestamp, token = str(int(now.timestamp())), uuid.uuid4().hex + "0123456789abcdef01"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


def mailgun(
    event: dict[str, Any], *, now: datetime, key: str = MAILGUN_KEY,
    signature: dict[str, str] | None = None,
) -> bytes:  # fmt: skip
    """A Mailgun webhook body: the signature (a fresh one unless given) beside the event data."""
    signed = signature or mailgun_signature(now, key)
    return json.dumps({"signature": signed, "event-data": event}).encode()


def mailgun_failed(
    severity: str = "permanent", code: int = 550, message: str = ""
) -> dict[str, Any]:
    return {
        "id": f"G9Bn5sl1TC6nu79C8C0bwg-{uuid.uuid4().hex[:6]}",
        "event": "failed",
        "severity": severity,
        "reason": "bounce" if severity == "permanent" else "generic",
        "recipient": ANN,
        "timestamp": 1747380598.0,
        "message": {"headers": {"message-id": "20250516072958.1.abc@mg.example.com"}},
        "delivery-status": {
            "code": code,
            "message": message or "5.1.1 The email account that you tried to reach does not exist.",
            "attempt-no": 1,
            "description": "",
        },
    }


def test_mailgun_permanent_failure_blocks_the_reader(
    mailgun_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    response = mailgun_client.post("/webhooks/mailgun", content=mailgun(mailgun_failed(), now=now))

    assert response.json() == {"recorded": 1, "duplicates": 0}
    assert reader(session).status == SubscriberStatus.BLOCKED
    assert audience(session, edition) == 1


def test_mailgun_temporary_failure_leaves_the_reader_active(
    mailgun_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    failed = mailgun_failed("temporary", 452, "4.2.2 The email account is over quota.")

    mailgun_client.post("/webhooks/mailgun", content=mailgun(failed, now=now))

    assert reader(session).status == SubscriberStatus.ACTIVE
    assert [(e.category, e.outcome) for e in events(session)] == [("soft", "recorded")]


def test_mailgun_signature_by_another_key_is_refused_and_changes_nothing(
    mailgun_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    body = mailgun(mailgun_failed(), now=now, key="key-not-ours")

    response = mailgun_client.post("/webhooks/mailgun", content=body)

    assert response.status_code == 403
    assert stored_events(session) == 0
    assert reader(session).status == SubscriberStatus.ACTIVE


def test_mailgun_signature_used_again_with_other_event_data_is_refused_and_changes_nothing(
    mailgun_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    # Mailgun signs the timestamp and token, not the event: a captured request, replayed
    # within its ten minutes with a hard bounce in place of a delay, would block the reader.
    signature = mailgun_signature(now)
    delay = mailgun_failed("temporary", 452, "4.2.2 The email account is over quota.")
    mailgun_client.post("/webhooks/mailgun", content=mailgun(delay, now=now, signature=signature))

    forged = mailgun(mailgun_failed(), now=now, signature=signature)
    response = mailgun_client.post("/webhooks/mailgun", content=forged)

    assert response.status_code == 403
    assert "signature was used before" in response.json()["detail"]
    assert reader(session).status == SubscriberStatus.ACTIVE
    assert [(e.category, e.outcome) for e in events(session)] == [("soft", "recorded")]


def test_mailgun_signature_of_an_event_not_kept_cannot_carry_a_bounce_later(
    mailgun_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    signature = mailgun_signature(now)
    delivered = {"id": "delivered-1", "event": "delivered", "recipient": ANN}
    first = mailgun_client.post(
        "/webhooks/mailgun", content=mailgun(delivered, now=now, signature=signature)
    )

    forged = mailgun(mailgun_failed(), now=now, signature=signature)
    response = mailgun_client.post("/webhooks/mailgun", content=forged)

    assert first.json() == {"recorded": 0, "duplicates": 0}
    assert response.status_code == 403
    assert reader(session).status == SubscriberStatus.ACTIVE
    assert events(session) == []


def test_mailgun_request_delivered_twice_is_recorded_once(
    mailgun_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    # Mailgun retries when our answer is lost: the same event under the same token is a
    # duplicate, not a replay, so it gets a 200 and Mailgun stops retrying.
    body = mailgun(mailgun_failed(), now=now)
    mailgun_client.post("/webhooks/mailgun", content=body)

    again = mailgun_client.post("/webhooks/mailgun", content=body)

    assert again.json() == {"recorded": 0, "duplicates": 1}
    assert len(events(session)) == 1


def test_mailgun_event_naming_a_broken_address_finds_no_reader(
    mailgun_client: TestClient, session: Session, edition: Edition, now: datetime
) -> None:
    # JSON may escape half of a UTF-16 pair. Such an address is no address: it is never
    # cleaned into another one (ann@example.com), so it blocks nobody.
    failed = {**mailgun_failed(), "recipient": "ann\ud800@example.com"}

    response = mailgun_client.post("/webhooks/mailgun", content=mailgun(failed, now=now))

    assert response.status_code == 200
    assert reader(session).status == SubscriberStatus.ACTIVE


def test_mailgun_form_encoded_body_is_a_400(mailgun_client: TestClient, session: Session) -> None:
    response = mailgun_client.post("/webhooks/mailgun", data={"event": "bounced"})

    assert response.status_code == 400
    assert response.json() == {"detail": "The body is not JSON: Mailgun sends JSON."}


# --- Postmark ---------------------------------------------------------------------------------


@pytest.fixture
def postmark_client(make_client: AppFactory) -> TestClient:
    return make_client(webhook_postmark_credentials=f"{POSTMARK_USER}:{POSTMARK_PASSWORD}")


def postmark_bounce(bounce_type: str, details: str, record: str = "Bounce") -> dict[str, Any]:
    """Postmark's bounce webhook, as in its documentation."""
    return {
        "RecordType": record,
        "ID": 4323372036854775807 + len(bounce_type),
        "Type": bounce_type,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "digest",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {},
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": details,
        "Email": ANN,
        "From": "digest@shortlysts.example.com",
        "BouncedAt": "2025-05-16T07:29:58Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Shortlysts Daily",
    }


def post_postmark(
    client: TestClient, record: dict[str, Any], password: str = POSTMARK_PASSWORD
) -> Response:
    return client.post("/webhooks/postmark", json=record, auth=(POSTMARK_USER, password))


def test_postmark_hard_bounce_blocks_the_reader(
    postmark_client: TestClient, session: Session, edition: Edition
) -> None:
    record = postmark_bounce("HardBounce", "smtp;550 5.1.1 The email account does not exist.")

    response = post_postmark(postmark_client, record)

    assert response.json() == {"recorded": 1, "duplicates": 0}
    assert reader(session).status == SubscriberStatus.BLOCKED
    assert audience(session, edition) == 1


def test_postmark_blocked_leaves_the_reader_subscribed(
    postmark_client: TestClient, session: Session, edition: Edition
) -> None:
    record = postmark_bounce("Blocked", "smtp;554 5.7.1 Service unavailable; client host blocked")

    post_postmark(postmark_client, record)

    assert reader(session).status == SubscriberStatus.ACTIVE
    assert [(e.category, e.outcome) for e in events(session)] == [("sender", "counted")]


def test_postmark_spam_complaint_unsubscribes_the_reader_from_every_list(
    postmark_client: TestClient, session: Session, edition: Edition
) -> None:
    record = postmark_bounce("SpamComplaint", "", record="SpamComplaint")

    post_postmark(postmark_client, record)

    assert lists_of(session) == {SubscriptionStatus.UNSUBSCRIBED}


def test_postmark_wrong_password_is_refused_and_changes_nothing(
    postmark_client: TestClient, session: Session, edition: Edition
) -> None:
    record = postmark_bounce("HardBounce", "smtp;550 5.1.1 The email account does not exist.")

    response = post_postmark(postmark_client, record, password="guess")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert stored_events(session) == 0
    assert reader(session).status == SubscriberStatus.ACTIVE


# --- every webhook ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["ses", "sendgrid", "mailgun", "postmark"])
def test_a_webhook_not_configured_answers_404(client: TestClient, provider: str) -> None:
    response = client.post(f"/webhooks/{provider}", content=b"[]")

    assert response.status_code == 404
    assert "not enabled" in response.json()["detail"]


def test_a_body_over_the_size_limit_is_refused_in_json(
    make_client: AppFactory, session: Session
) -> None:
    client = make_client(webhook_mailgun_signing_key=MAILGUN_KEY, max_request_bytes=1000)

    def chunks() -> Iterator[bytes]:  # streamed: no Content-Length to refuse up front
        yield b"[" + b" " * 2000 + b"]"

    response = client.post("/webhooks/mailgun", content=chunks())

    assert response.status_code == 413
    assert "limit is 1,000 bytes" in response.json()["detail"]


def test_events_that_cannot_be_stored_get_a_503_so_the_provider_retries(
    make_client: AppFactory, tmp_path: Path, now: datetime
) -> None:
    down = f"sqlite:///{tmp_path / 'no-such-directory' / 'newsletter.db'}"
    client = make_client(webhook_mailgun_signing_key=MAILGUN_KEY, database_url=down)

    response = client.post("/webhooks/mailgun", content=mailgun(mailgun_failed(), now=now))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "60"
    assert response.json() == {"detail": "The events could not be recorded just now; please retry."}
