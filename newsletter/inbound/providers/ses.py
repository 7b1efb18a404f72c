"""Amazon SES notifications, delivered by SNS to ``POST /webhooks/ses``.

SNS signs every message with RSA (``SignatureVersion`` 1: SHA1withRSA, 2: SHA256withRSA) over
a canonical string of its fields, and names the certificate to check it with in
``SigningCertURL``. That URL comes in the request, so a forger would name their own
certificate: it is fetched only over https, on the default port, from a host that
``NEWSLETTER_WEBHOOK_SES_CERTIFICATE_HOSTS`` allows (SNS's own, ``sns.<region>.amazonaws.com``,
by default), and only at the path SNS keeps its certificates at
(``/SimpleNotificationService-<hex>.pem``, no query, no fragment), without following
redirects, with a short timeout and a size cap, and kept per URL in a small in-process cache.
The topic must be one of ``NEWSLETTER_WEBHOOK_SES_TOPIC_ARNS``.

A ``SubscriptionConfirmation`` is confirmed, once verified, by fetching its ``SubscribeURL``
from the same allowed hosts. A ``Notification`` carries one SES notification (``Bounce``,
``Complaint``; other types are not recorded); SNS's ``MessageId`` is its event id.

Plain http, on any port, is taken only from 127.0.0.1, and only when the host pattern names
it: a test serving a certificate it made. A production pattern never names it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from newsletter.inbound.classify import Category, categorise
from newsletter.inbound.policy import Signal
from newsletter.inbound.providers import (
    ProviderEvent,
    ProviderRefused,
    about_address,
    address_of,
    bounce,
    json_body,
    text_of,
)
from newsletter.models import MailEventKind

DEFAULT_CERTIFICATE_HOSTS = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
LOOPBACK = "127.0.0.1"
FETCH_TIMEOUT_S = 5.0
MAX_CERTIFICATE_BYTES = 64 * 1024  # an SNS certificate is about 2 KB
CACHED_CERTIFICATES = 16  # SNS signs with one certificate per region at a time
# Where SNS keeps its signing certificates. Anything else on an SNS host (an S3-style path,
# a redirector, a query that changes the answer) is not a certificate SNS published, and a
# narrow shape also keeps the cache from filling with variants of one URL.
CERTIFICATE_PATH = re.compile(rb"/SimpleNotificationService-[0-9a-f]+\.pem")

# The fields each message type signs, in the order SNS signs them.
_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION,
    "UnsubscribeConfirmation": _CONFIRMATION,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

# SES's bounce sub-types that say more than the server's reply.
_OUR_MESSAGE = {
    "MessageTooLarge": "content",
    "ContentRejected": "content",
    "AttachmentRejected": "content",
}
# SES refused to send at all: the address bounced (or complained) before, so it is dead to us.
_SUPPRESSED = {"Suppressed", "OnAccountSuppressionList"}
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[\w.-]{1,20}\s*;\s*")


@dataclass(frozen=True)
class SnsMessage:
    """An SNS message's string fields, as sent."""

    fields: dict[str, str]

    @property
    def type(self) -> str:
        return self.fields["Type"]

    @property
    def message_id(self) -> str:
        return self.fields["MessageId"]

    @property
    def topic_arn(self) -> str:
        return self.fields["TopicArn"]

    def canonical(self) -> bytes:
        """The string SNS signed: each signed field present, as "name\\nvalue\\n"."""
        names = SIGNED_FIELDS[self.type]
        return "".join(f"{n}\n{self.fields[n]}\n" for n in names if n in self.fields).encode()


def read(body: bytes) -> SnsMessage:
    """The SNS message in ``body``; 403 if it is not signed, 400 if it is not SNS's shape."""
    data = json_body(body, "SNS")
    if not isinstance(data, dict):
        raise ProviderRefused(400, "An SNS message is a JSON object.")
    if not data.get("Signature") or not data.get("SigningCertURL"):
        raise ProviderRefused(
            403, "The message is not signed: SNS signs every message (Signature, SigningCertURL)."
        )
    kind = data.get("Type")
    if kind not in SIGNED_FIELDS:
        raise ProviderRefused(400, f"{kind!r} is not an SNS message type this webhook reads.")
    # Subject is optional (SNS sends it only when the publisher set one), possibly as null.
    required = [n for n in SIGNED_FIELDS[kind] if n != "Subject"] + ["SignatureVersion"]
    missing = [n for n in required if not isinstance(data.get(n), str)]
    if missing:
        raise ProviderRefused(400, f"The SNS message has no {', '.join(missing)}.")
    return SnsMessage({k: v for k, v in data.items() if isinstance(v, str)})


def allowed_url(url: str, certificate_hosts: str) -> httpx.URL:
    """``url`` if we may fetch it (https on an allowed host, default port); 403 otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ProviderRefused(403, "The certificate or confirmation URL is not a URL.") from None
    host = parsed.host
    loopback = parsed.scheme == "http" and host == LOOPBACK  # a test's own server
    secure = parsed.scheme == "https" or loopback
    if not secure or parsed.userinfo or not re.fullmatch(certificate_hosts, host):
        raise ProviderRefused(
            403,
            f"{parsed.scheme}://{host} is not an SNS host: certificates and confirmations are "
            "fetched only over https from the hosts NEWSLETTER_WEBHOOK_SES_CERTIFICATE_HOSTS "
            "allows.",
        )
    # httpx gives no port when the URL names none or the scheme's own (443).
    if parsed.port is not None and not loopback:
        raise ProviderRefused(
            403, f"Port {parsed.port} is not SNS's: certificates are fetched from port 443 only."
        )
    return parsed


def certificate_url(url: str, certificate_hosts: str) -> httpx.URL:
    """``url`` if it names an SNS signing certificate on an allowed host; 403 otherwise."""
    parsed = allowed_url(url, certificate_hosts)
    # raw_path holds the query too, still percent-encoded: an encoded or queried variant of
    # the path does not match.
    if not CERTIFICATE_PATH.fullmatch(parsed.raw_path) or "#" in url:
        raise ProviderRefused(
            403,
            "The signing certificate URL is not one SNS publishes: its path is "
            "/SimpleNotificationService-<hex>.pem, with no query or fragment.",
        )
    return parsed


def _get(url: httpx.URL, what: str, limit: int) -> bytes:
    """GET ``url``: its body, at most ``limit`` bytes; 503 when it cannot be reached now (SNS
    retries then), 403/400 when it answers something else than the document."""
    try:
        # No proxies from the environment: the host checked is the host connected to.
        with (
            httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=False, trust_env=False) as c,
            c.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                status = response.status_code
                raise ProviderRefused(403, f"{url.host} answered {status} for {what}.")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise ProviderRefused(403, f"{what} is larger than {limit:,} bytes.")
            return bytes(body)
    except httpx.HTTPError as error:
        raise ProviderRefused(
            503, f"{what} could not be fetched from {url.host} just now ({type(error).__name__})."
        ) from None


class Certificates:
    """SNS signing keys by certificate URL, fetched on first use; the oldest go first."""

    def __init__(self, size: int = CACHED_CERTIFICATES) -> None:
        self.size = size
        self._keys: OrderedDict[str, RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, url: httpx.URL) -> RSAPublicKey:
        name = str(url)
        with self._lock:
            if name in self._keys:
                self._keys.move_to_end(name)
                return self._keys[name]
        # Fetched outside the lock: a slow fetch must not hold up every other webhook.
        pem = _get(url, "the signing certificate", MAX_CERTIFICATE_BYTES)
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            raise ProviderRefused(403, "The signing certificate is not PEM.") from None
        if not isinstance(key, RSAPublicKey):
            raise ProviderRefused(403, "The signing certificate does not hold an RSA key.")
        with self._lock:
            self._keys[name] = key
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)
        return key


CERTIFICATES = Certificates()


def verify(
    message: SnsMessage,
    *,
    topic_arns: str,
    certificate_hosts: str,
    certificates: Certificates = CERTIFICATES,
) -> None:
    """Raise :class:`ProviderRefused` unless SNS signed ``message`` for one of our topics.

    The topic and the certificate's host are checked before anything is fetched.
    """
    allowed = {arn.strip() for arn in topic_arns.split(",") if arn.strip()}
    if message.topic_arn not in allowed:
        raise ProviderRefused(
            403,
            f"Topic {message.topic_arn} is not one this site reads "
            "(NEWSLETTER_WEBHOOK_SES_TOPIC_ARNS).",
        )
    algorithm = _HASHES.get(message.fields["SignatureVersion"])
    if algorithm is None:
        raise ProviderRefused(
            400, f"SignatureVersion {message.fields['SignatureVersion']!r} is not 1 or 2."
        )
    url = certificate_url(message.fields["SigningCertURL"], certificate_hosts)
    try:
        signature = base64.b64decode(message.fields["Signature"], validate=True)
    except (binascii.Error, ValueError):
        raise ProviderRefused(403, "The signature is not base64.") from None
    key = certificates.key(url)
    try:
        key.verify(signature, message.canonical(), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise ProviderRefused(
            403, "The signature does not match: the message was not signed by SNS as it stands."
        ) from None


def confirm(message: SnsMessage, *, certificate_hosts: str) -> None:
    """Confirm a verified subscription: SNS starts sending once its SubscribeURL is fetched."""
    url = allowed_url(message.fields["SubscribeURL"], certificate_hosts)
    _get(url, "the subscription confirmation", MAX_CERTIFICATE_BYTES)


def category_of(
    bounce_type: str, sub_type: str, status: str, diagnostic: str
) -> tuple[Category, str]:
    """Whose fault one SES bounce was: SES's sub-type where it says more than the reply.

    The reply decides first when it names our mail (a spam filter's "550 5.7.1"), whatever
    SES called it: a refusal of our mail never counts against the reader.
    """
    if sub_type in _OUR_MESSAGE:
        return "sender", _OUR_MESSAGE[sub_type]
    if sub_type in _SUPPRESSED:
        return "hard", "suppressed"
    category, reason = categorise(status, diagnostic)
    if category == "sender":
        return category, reason
    if sub_type == "NoEmail":
        return "hard", "user_unknown"
    if sub_type == "MailboxFull":
        return "soft", "mailbox_full"
    if bounce_type == "Transient" and category == "hard":
        return "soft", reason  # SES itself says a later message may be delivered
    return category, reason


def events(message: SnsMessage, raw: bytes) -> list[ProviderEvent]:
    """The SES notification a verified ``Notification`` carries, if it is one we act on."""
    if message.type != "Notification":
        return []
    try:
        note = json.loads(message.fields["Message"])
    except json.JSONDecodeError:
        note = None
    if not isinstance(note, dict):
        raise ProviderRefused(400, "The notification's Message is not an SES notification.")
    # Identity notifications say notificationType; configuration-set events say eventType.
    kind = note.get("notificationType") or note.get("eventType")
    if kind == "Bounce":
        signals = _bounces(_object(note.get("bounce")))
    elif kind == "Complaint":
        signals = _complaints(_object(note.get("complaint")))
    else:
        return []  # deliveries, sends, opens: nothing to do, and too many to keep
    return [ProviderEvent(message.message_id, raw, signals, message_id=_message_id(note))]


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _recipients(value: object) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _bounces(details: dict[str, Any]) -> list[Signal]:
    bounce_type = text_of(details.get("bounceType"))
    sub_type = text_of(details.get("bounceSubType"))
    signals = []
    for recipient in _recipients(details.get("bouncedRecipients")):
        address = address_of(recipient.get("emailAddress"))
        if not address:
            continue
        status = text_of(recipient.get("status"), 16)
        diagnostic = _DIAGNOSTIC_TYPE.sub("", text_of(recipient.get("diagnosticCode")))
        category, reason = category_of(bounce_type, sub_type, status, diagnostic)
        signals.append(bounce(address, category, reason, status=status, diagnostic=diagnostic))
    return signals


def _complaints(details: dict[str, Any]) -> list[Signal]:
    reason = text_of(details.get("complaintFeedbackType"), 64) or "complaint"
    return [
        about_address(MailEventKind.COMPLAINT, address, reason)
        for recipient in _recipients(details.get("complainedRecipients"))
        if (address := address_of(recipient.get("emailAddress")))
    ]


def _message_id(note: dict[str, Any]) -> str:
    """Our Message-ID, from the original's headers SES passes back (not SES's own id)."""
    mail = _object(note.get("mail"))
    for header in _recipients(mail.get("headers")):
        if text_of(header.get("name")).lower() == "message-id":
            return text_of(header.get("value"), 250)
    return text_of(_object(mail.get("commonHeaders")).get("messageId"), 250)
