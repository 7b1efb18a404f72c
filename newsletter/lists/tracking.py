"""A list's tracking settings and what each means for its readers' privacy.

The admin's list form, ``PATCH /api/v1/lists/{slug}`` and ``newsletter lists create/set``
explain the choices with these sentences, so an editor reads the same thing everywhere.
What readers are told at signup is :func:`newsletter.subscriptions.consent.tracking_notice`.
"""

from __future__ import annotations

from newsletter.models import ClickTracking, NewsletterList

CLICK_TRACKING_MEANS = {
    ClickTracking.OFF: "links lead straight to the story; nothing is counted",
    ClickTracking.ANONYMOUS: "clicks are counted per link; nobody's clicks are stored",
    ClickTracking.INDIVIDUAL: (
        "each reader's clicks are stored, for click_retention_days, in their data download "
        "and erased with them; readers are told so when they sign up"
    ),
}
TRACK_OPENS_MEANS = (
    "an invisible image counts opens. Only an estimate: images may be blocked, and Apple "
    "Mail Privacy Protection fetches every message, so its opens are counted as machine opens"
    "; with individual click tracking each reader's opens are stored too"
)
UTM_TAGS_MEANS = (
    "story links carry utm_source, utm_medium=email and utm_campaign=<list>-<date>, for the "
    "site's own analytics; they name no reader"
)
CLICK_TRACKING_HELP = "How much a story link tells us: " + "; ".join(
    f"{choice.value} ({means})" for choice, means in CLICK_TRACKING_MEANS.items()
)


def change_tracking(
    nl: NewsletterList,
    *,
    click_tracking: ClickTracking | None = None,
    track_opens: bool | None = None,
    utm_tags: bool | None = None,
) -> None:
    """Change what the list's emails track (None keeps a setting), from the next edition
    rendered on: a message sent keeps the links it was sent with."""
    if click_tracking is not None:
        nl.click_tracking = click_tracking
    if track_opens is not None:
        nl.track_opens = track_opens
    if utm_tags is not None:
        nl.utm_tags = utm_tags


def tracking_summary(nl: NewsletterList) -> str:
    """The list's tracking in a line, for listings."""
    opens = "opens counted" if nl.track_opens else "opens not counted"
    utm = "UTM tags" if nl.utm_tags else "no UTM tags"
    return f"clicks {nl.click_tracking.value}, {opens}, {utm}"
