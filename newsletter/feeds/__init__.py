"""RSS and Atom feeds polled for new posts: see :mod:`newsletter.feeds.poll`."""

from newsletter.feeds.poll import (
    FeedError,
    Fetch,
    PollResult,
    add_feed,
    claim_feed,
    due_feeds,
    feed_status,
    fetch_feed,
    get_feed,
    list_feeds,
    poll_due_feed,
    poll_feed,
    resume_feed,
)
from newsletter.posts.fetch import Fetched, FetchError

__all__ = [
    "FeedError",
    "Fetch",
    "FetchError",
    "Fetched",
    "PollResult",
    "add_feed",
    "claim_feed",
    "due_feeds",
    "feed_status",
    "fetch_feed",
    "get_feed",
    "list_feeds",
    "poll_due_feed",
    "poll_feed",
    "resume_feed",
]
