"""DKIM: every message verifies, and the one-click headers are covered by the signature."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import Settings
from newsletter.delivery.prepared import PreparedEdition, Recipient
from newsletter.delivery.signing import DKIMSigner
from newsletter.delivery.transports import MemoryTransport, SigningTransport, outgoing_transport
from newsletter.rendering.digest import DigestContext, Story, render_digest


@pytest.fixture(scope="module")
def key() -> tuple[bytes, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.fixture(scope="module")
def message() -> bytes:
    context = DigestContext("Shortlysts Daily", "en", date(2025, 5, 16), "Shortlysts",
                            "https://www.shortlysts.com", "1 Example St")  # fmt: skip
    story = Story("A story", "https://www.shortlysts.com/a", "Dek.", "Summary.", "World", None, "")
    email, _ = render_digest(context, [story], budget_bytes=100_000)
    edition = PreparedEdition(
        edition_id=1, list_id=1, list_slug="daily", list_name="Shortlysts Daily",
        subject=email.subject, html=email.html, text=email.text, from_name="Shortlysts",
        from_address="digest@shortlysts.example.com", reply_to=None,
        domain="shortlysts.example.com", base_url="https://news.example.com",
        secret_key="s", date=datetime(2025, 5, 16, tzinfo=UTC), markers=context.markers,
    )  # fmt: skip
    return edition.personalise(Recipient(1, 1, "ann@example.com")).data


def dns(record: bytes) -> object:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"nl._domainkey.shortlysts.example.com." else None

    return lookup


def test_signed_digest_verifies(key: tuple[bytes, bytes], message: bytes) -> None:
    signed = DKIMSigner("shortlysts.example.com", "nl", key[0]).sign(message)
    assert dkim.verify(signed, dnsfunc=dns(key[1]))


def test_one_click_headers_are_signed(key: tuple[bytes, bytes], message: bytes) -> None:
    signed = DKIMSigner("shortlysts.example.com", "nl", key[0]).sign(message)
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    signature = header.split("DKIM-Signature:", 1)[1].split("\r\nFrom:", 1)[0]
    signed_headers = "".join(signature.split()).split("h=", 1)[1].split(";", 1)[0].split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "list-id"} <= set(signed_headers)


def test_tampered_message_fails(key: tuple[bytes, bytes], message: bytes) -> None:
    signed = DKIMSigner("shortlysts.example.com", "nl", key[0]).sign(message)
    assert not dkim.verify(signed.replace(b"A story", b"B story"), dnsfunc=dns(key[1]))


def test_settings_turn_signing_on(
    key: tuple[bytes, bytes], message: bytes, settings: Settings, tmp_path: Path
) -> None:
    pem = tmp_path / "dkim.pem"
    pem.write_bytes(key[0])
    configured = settings.model_copy(
        update={"dkim_domain": "shortlysts.example.com", "dkim_selector": "nl",
                "dkim_private_key": pem, "smtp_url": f"maildir:{tmp_path / 'out'}"}
    )  # fmt: skip
    transport = outgoing_transport(configured)
    assert isinstance(transport, SigningTransport)
    memory = MemoryTransport()
    with SigningTransport(memory, transport.signer) as signing:
        signing.send("a@example.com", "b@example.com", message)
    assert dkim.verify(memory.sent[0][2], dnsfunc=dns(key[1]))


def test_without_a_domain_nothing_is_signed(settings: Settings) -> None:
    assert not isinstance(outgoing_transport(settings), SigningTransport)


def test_a_domain_without_a_key_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="NEWSLETTER_DKIM_PRIVATE_KEY"):
        Settings(environment="development", dkim_domain="example.com")
