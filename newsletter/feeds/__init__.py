"""RSS and Atom feeds polled for new posts: see :mod:`newsletter.feeds.poll`."""

from newsletter.feeds.poll import (
    FeedError,
    Fetch,
    Fetched,
    FetchError,
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
