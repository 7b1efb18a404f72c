"""The data model; every table is importable from here."""

from newsletter.models.analytics import (
    ClickFlush,
    ClickHour,
    ClickTracking,
    EditionEngagement,
    EngagedMessage,
    ReaderClick,
    TrackedLink,
)
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
    "ClickFlush",
    "ClickHour",
    "ClickTracking",
    "ConsentAction",
    "ConsentEvent",
    "Delivery",
    "DeliveryStatus",
    "Edition",
    "EditionEngagement",
    "EditionItem",
    "EditionStatus",
    "Editor",
    "EditorSession",
    "EngagedMessage",
    "Feed",
    "Frequency",
    "InboundMessage",
    "InboundStatus",
    "MailEvent",
    "MailEventKind",
    "NewsletterList",
    "Post",
    "ReaderClick",
    "StoryDetail",
    "Subscriber",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionStatus",
    "TrackedLink",
]
