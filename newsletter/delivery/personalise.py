"""Per-recipient messages from an edition rendered once.

Only string substitution and MIME assembly happen per recipient: no Jinja, MJML or
premailer. The personal parts are the address, the signed unsubscribe and preferences
links (in the body and in ``List-Unsubscribe``) and the ``Message-ID``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from dataclasses import dataclass
from datetime import datetime

from newsletter.delivery.mime import build_message
from newsletter.rendering import placeholders
from newsletter.subscriptions.tokens import PREFERENCES, UNSUBSCRIBE, make_token


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    subscriber_id: int
    email: str


@dataclass(frozen=True)
class Personalised:
    message_id: str
    data: bytes


@dataclass(frozen=True)
class PreparedEdition:
    """Everything about an edition that is the same for every recipient."""

    edition_id: int
    list_id: int
    list_slug: str
    list_name: str
    subject: str
    html: str
    text: str
    from_name: str
    from_address: str
    reply_to: str | None
    domain: str
    base_url: str
    secret_key: str
    date: datetime

    @property
    def list_id_header(self) -> str:
        return f"{self.list_name} <{self.list_slug}.{self.domain}>"

    def message_id(self, delivery_id: int) -> str:
        """Stable per delivery, so a retried message keeps its Message-ID."""
        tag = hmac.new(
            self.secret_key.encode(), f"{self.edition_id}.{delivery_id}".encode(), hashlib.sha256
        ).hexdigest()[:12]
        return f"<{self.edition_id}.{delivery_id}.{tag}@{self.domain}>"

    def links(self, recipient: Recipient) -> tuple[str, str]:
        base = self.base_url.rstrip("/")
        unsubscribe = make_token(
            self.secret_key, UNSUBSCRIBE, recipient.subscriber_id, self.list_id
        )
        preferences = make_token(
            self.secret_key, PREFERENCES, recipient.subscriber_id, self.list_id
        )
        return f"{base}/unsubscribe/{unsubscribe}", f"{base}/preferences/{preferences}"

    def bodies(self, recipient: Recipient) -> tuple[str, str, str]:
        """The text and HTML bodies for one reader, and their unsubscribe URL."""
        unsubscribe_url, preferences_url = self.links(recipient)
        values = {
            placeholders.UNSUBSCRIBE_URL: unsubscribe_url,
            placeholders.PREFERENCES_URL: preferences_url,
        }
        text, body = self.text, self.html
        for marker, value in values.items():
            text = text.replace(marker, value)
            body = body.replace(marker, value)
        text = text.replace(placeholders.EMAIL, recipient.email)
        body = body.replace(placeholders.EMAIL, html.escape(recipient.email))
        return text, body, unsubscribe_url

    def personalise(self, recipient: Recipient) -> Personalised:
        text, body, unsubscribe_url = self.bodies(recipient)
        message_id = self.message_id(recipient.delivery_id)
        token = unsubscribe_url.rsplit("/", 1)[1]
        headers = {"Reply-To": self.reply_to} if self.reply_to else {}
        headers |= {
            "List-Id": self.list_id_header,
            "List-Unsubscribe": (
                f"<{unsubscribe_url}>, "
                f"<mailto:unsubscribe@{self.domain}?subject=unsubscribe%20{token}>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        data = build_message(
            from_name=self.from_name,
            from_address=self.from_address,
            to=recipient.email,
            subject=self.subject,
            date=self.date,
            message_id=message_id,
            text=text,
            html=body,
            headers=headers,
        )
        return Personalised(message_id=message_id, data=data)
