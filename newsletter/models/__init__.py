"""The data model; every table is importable from here."""

from newsletter.models.consent import ConsentAction, ConsentEvent
from newsletter.models.delivery import FINAL_STATUSES, Delivery, DeliveryStatus
from newsletter.models.edition import EDITABLE_STATUSES, Edition, EditionItem, EditionStatus
from newsletter.models.editor import ApiToken, Editor, EditorSession
from newsletter.models.feed import Feed
from newsletter.models.inbound import InboundMessage, InboundStatus, MailEvent, MailEventKind
from newsletter.models.newsletter_list import NewsletterList, StoryDetail
from newsletter.models.post import Post
from newsletter.models.subscriber import (
    Frequency,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)

__all__ = [
    "EDITABLE_STATUSES",
    "FINAL_STATUSES",
    "ApiToken",
    "ConsentAction",
    "ConsentEvent",
    "Delivery",
    "DeliveryStatus",
    "Edition",
    "EditionItem",
    "EditionStatus",
    "Editor",
    "EditorSession",
    "Feed",
    "Frequency",
    "InboundMessage",
    "InboundStatus",
    "MailEvent",
    "MailEventKind",
    "NewsletterList",
    "Post",
    "StoryDetail",
    "Subscriber",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionStatus",
]
