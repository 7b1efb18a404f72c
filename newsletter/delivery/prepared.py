"""Per-recipient messages from an edition rendered once.

Only string substitution and MIME assembly happen per recipient: no Jinja, MJML or
premailer. The personal parts are the address, the signed unsubscribe and preferences
links (in the body and in ``List-Unsubscribe``) and the ``Message-ID``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import cached_property

from newsletter.analytics.readers import ReaderParts
from newsletter.config import Settings
from newsletter.delivery import message_ids
from newsletter.delivery.headers import folded_value
from newsletter.delivery.mime import build_message
from newsletter.delivery.mime_template import (
    HEADER_LIST_UNSUBSCRIBE,
    HEADER_MESSAGE_ID,
    HEADER_TO,
    MessageTemplate,
    body_slot,
    compile_template,
    qp_value,
)
from newsletter.delivery.verp import ReturnPath
from newsletter.models import ClickTracking, Edition
from newsletter.rendering.placeholders import WEB_READER, Markers
from newsletter.subscriptions.tokens import PREFERENCES, UNSUBSCRIBE, make_token


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    subscriber_id: int
    email: str
    # The reader's token_key, signed into their links.
    token_key: str = ""


@dataclass(frozen=True)
class Personalised:
    message_id: str
    data: bytes
    # The envelope sender: the VERP address naming this delivery, or the From address.
    sender: str


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
    markers: Markers
    return_path: ReturnPath | None = None
    unsubscribe_mailbox: str = ""
    click_tracking: ClickTracking = ClickTracking.OFF

    @property
    def list_id_header(self) -> str:
        return f"{self.list_name} <{self.list_slug}.{self.domain}>"

    @cached_property
    def _message_ids(self) -> Callable[[int], str]:
        return message_ids.for_edition(
            self.secret_key, self.edition_id, self.markers.key, self.domain
        )

    def message_id(self, delivery_id: int) -> str:
        """Signed, with the edition's random part (:mod:`newsletter.delivery.message_ids`);
        the same in every batch, so a retried message keeps its Message-ID."""
        return self._message_ids(delivery_id)

    @cached_property
    def _senders(self) -> Callable[[int], str] | None:
        return None if self.return_path is None else self.return_path.for_edition(self.edition_id)

    def envelope_sender(self, recipient: Recipient) -> str:
        """The reader's VERP address (:mod:`newsletter.delivery.verp`), else the From."""
        if self._senders is None:
            return self.from_address
        return self._senders(recipient.subscriber_id)

    @cached_property
    def _reader_parts(self) -> ReaderParts:
        return ReaderParts(self.secret_key, self.edition_id, self.click_tracking, self.date)

    def reader_part(self, recipient: Recipient) -> str:
        """The reader part of this message's tracked links (:mod:`newsletter.analytics`).
        A test copy (no delivery) gets the web's: its links lead on without being counted."""
        if not recipient.delivery_id:
            return WEB_READER
        return self._reader_parts.part(recipient.delivery_id)

    def links(self, recipient: Recipient) -> tuple[str, str]:
        base = self.base_url.rstrip("/")
        reader = (recipient.subscriber_id, self.list_id, recipient.token_key)
        unsubscribe = make_token(self.secret_key, UNSUBSCRIBE, *reader)
        preferences = make_token(self.secret_key, PREFERENCES, *reader)
        return f"{base}/unsubscribe/{unsubscribe}", f"{base}/preferences/{preferences}"

    def bodies(self, recipient: Recipient) -> tuple[str, str, str]:
        """The text and HTML bodies for one reader, and their unsubscribe URL."""
        unsubscribe_url, preferences_url = self.links(recipient)
        links = {
            "unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url,
            "reader": self.reader_part(recipient),
        }  # fmt: skip
        text = self.markers.fill(self.text, email=recipient.email, **links)
        body = self.markers.fill(self.html, email=html.escape(recipient.email), **links)
        return text, body, unsubscribe_url

    @cached_property
    def _mailto(self) -> str:
        """The edition's part of the ``mailto:`` in List-Unsubscribe, made once."""
        mailbox = self.unsubscribe_mailbox or f"unsubscribe@{self.domain}"
        return f"<mailto:{mailbox}?subject=unsubscribe%20"

    def _list_unsubscribe(self, unsubscribe_url: str) -> str:
        token = unsubscribe_url.rsplit("/", 1)[1]
        return f"<{unsubscribe_url}>, {self._mailto}{token}>"

    def _extra_headers(self) -> dict[str, str]:
        headers = {"Reply-To": self.reply_to} if self.reply_to else {}
        return headers | {"List-Id": self.list_id_header}

    @cached_property
    def template(self) -> MessageTemplate:
        """The edition's message, built once, with a slot for each recipient's values."""
        return compile_template(
            from_name=self.from_name,
            from_address=self.from_address,
            subject=self.subject,
            date=format_datetime(self.date),
            extra_headers=self._extra_headers(),
            text=self.text,
            html=self.html,
            markers=self.markers,
        )

    @cached_property
    def _tracked(self) -> bool:
        """Whether the bodies carry tracked links, each with a slot for the reader part."""
        return any(slot.endswith(":reader") for slot in self.template.slots)

    def personalise(self, recipient: Recipient) -> Personalised:
        """One reader's message: prepared bytes joined with their values."""
        if not recipient.email.isascii():
            return self.personalise_slowly(recipient)
        unsubscribe_url, preferences_url = self.links(recipient)
        message_id = self.message_id(recipient.delivery_id)
        escaped = html.escape(recipient.email)
        values = {
            HEADER_TO: recipient.email,
            HEADER_MESSAGE_ID: message_id,
            HEADER_LIST_UNSUBSCRIBE: folded_value(
                "List-Unsubscribe", self._list_unsubscribe(unsubscribe_url)
            ),
            body_slot("text", "unsubscribe_url"): qp_value(unsubscribe_url),
            body_slot("text", "preferences_url"): qp_value(preferences_url),
            body_slot("text", "email"): qp_value(recipient.email),
            body_slot("html", "unsubscribe_url"): qp_value(unsubscribe_url),
            body_slot("html", "preferences_url"): qp_value(preferences_url),
            body_slot("html", "email"): qp_value(escaped),
        }
        if self._tracked:
            reader = qp_value(self.reader_part(recipient))
            values[body_slot("text", "reader")] = values[body_slot("html", "reader")] = reader
        data = self.template.render({k: v.encode("ascii") for k, v in values.items()})
        return Personalised(message_id, data, self.envelope_sender(recipient))

    def personalise_slowly(self, recipient: Recipient) -> Personalised:
        """The same message through the standard library's MIME generator.

        Used for internationalised addresses, and as the reference the fast path is tested
        against.
        """
        text, body, unsubscribe_url = self.bodies(recipient)
        message_id = self.message_id(recipient.delivery_id)
        headers = self._extra_headers() | {
            "List-Unsubscribe": self._list_unsubscribe(unsubscribe_url),
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
        return Personalised(message_id, data, self.envelope_sender(recipient))


def prepare_edition(edition: Edition, settings: Settings, *, now: datetime) -> PreparedEdition:
    nl = edition.newsletter_list
    return PreparedEdition(
        edition_id=edition.id,
        list_id=nl.id,
        list_slug=nl.slug,
        list_name=nl.name,
        subject=edition.subject,
        html=edition.html,
        text=edition.text,
        from_name=nl.from_name,
        from_address=nl.from_address,
        reply_to=nl.reply_to,
        domain=settings.message_domain,
        base_url=settings.base_url,
        secret_key=settings.secret_key,
        date=now,
        markers=Markers(edition.marker_key),
        return_path=ReturnPath.parse(settings.bounce_address, settings.secret_key),
        unsubscribe_mailbox=settings.unsubscribe_mailbox,
        click_tracking=edition.click_tracking,
    )
