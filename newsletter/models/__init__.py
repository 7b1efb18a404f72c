"""The data model; every table is importable from here."""

from newsletter.models.consent import ConsentAction, ConsentEvent
from newsletter.models.delivery import FINAL_STATUSES, Delivery, DeliveryStatus
from newsletter.models.edition import Edition, EditionItem, EditionStatus
from newsletter.models.newsletter_list import NewsletterList
from newsletter.models.post import Post
from newsletter.models.subscriber import (
    Frequency,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)

__all__ = [
    "FINAL_STATUSES",
    "ConsentAction",
    "ConsentEvent",
    "Delivery",
    "DeliveryStatus",
    "Edition",
    "EditionItem",
    "EditionStatus",
    "Frequency",
    "NewsletterList",
    "Post",
    "Subscriber",
    "SubscriberStatus",
    "Subscription",
    "SubscriptionStatus",
]
