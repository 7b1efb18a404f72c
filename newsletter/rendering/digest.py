"""The digest email of an edition, kept under Gmail's clipping size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

from newsletter.models import StoryDetail
from newsletter.rendering.placeholders import Markers, new_key
from newsletter.rendering.render import RenderedEmail, render_email

# Gmail clips HTML beyond ~102 KB as sent (encoded) and hides the footer, unsubscribe link
# included. The build's budget (html_budget_bytes) leaves room below it for each reader's
# address and links.
GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(frozen=True)
class Story:
    title: str
    url: str
    dek: str
    summary: str
    category: str
    image_url: str | None
    image_alt: str
    # Each of the post's sections as (heading, paragraphs), plain text; the list's story
    # detail chooses how many are shown.
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()


# How many sections a full story shows at each story detail (None: all of them).
SECTIONS_SHOWN: dict[StoryDetail, int | None] = {
    StoryDetail.DEK: 0,
    StoryDetail.FIRST_SECTION: 1,
    StoryDetail.ALL_SECTIONS: None,
}
# What a story detail gives way to when even one story at it is over the budget.
_LESS_DETAIL = {
    StoryDetail.ALL_SECTIONS: StoryDetail.FIRST_SECTION,
    StoryDetail.FIRST_SECTION: StoryDetail.DEK,
}


@dataclass(frozen=True)
class DigestContext:
    list_name: str
    language: str
    edition_date: date
    site_name: str
    site_url: str
    postal_address: str
    intro: str = ""
    # An editor's choice; empty: generated from the lead story.
    subject_override: str = ""
    preheader_override: str = ""
    # The edition's page in the public archive ("View in your browser").
    archive_url: str = ""
    # Where each reader's values go: a key of its own for every render.
    markers: Markers = field(default_factory=lambda: Markers(new_key()))
    # The list's choice: the dek only, or with the first or every section of a post.
    story_detail: StoryDetail = StoryDetail.DEK
    # The open pixel's URL (its reader part a marker), on lists that count opens.
    open_pixel_url: str = ""

    def shown(self, story: Story) -> dict[str, Any]:
        """A full story as the template gets it: with the sections its detail shows, which
        then stand in for the summary. A post without sections looks the same at any."""
        values = asdict(story)
        values["sections"] = story.sections[: SECTIONS_SHOWN[self.story_detail]]
        return values

    def template_context(self, full: Sequence[Story], headlines: Sequence[Story]) -> dict[str, Any]:
        stories = [self.shown(s) for s in full]
        compact = [asdict(s) for s in headlines]
        day = self.edition_date
        return {
            "list_name": self.list_name,
            "language": self.language,
            "date_long": f"{day:%A, %B} {day.day}, {day.year}",
            "date_short": f"{day:%b} {day.day}",
            "site_name": self.site_name,
            "site_url": self.site_url,
            "postal_address": self.postal_address,
            "intro": self.intro,
            "subject_override": self.subject_override,
            "preheader_override": self.preheader_override,
            "archive_url": self.archive_url,
            "open_pixel_url": self.open_pixel_url,
            "stories": stories,
            "headlines": compact,
            "lead": (stories or compact)[0],
            "stories_total": len(stories) + len(compact),
            **self.markers.context(),
        }


def render_digest(
    context: DigestContext, stories: Sequence[Story], *, budget_bytes: int
) -> tuple[RenderedEmail, int]:
    """Render with as many full stories as fit in ``budget_bytes`` of HTML as sent
    (quoted-printable, :attr:`RenderedEmail.sent_bytes`).

    Returns the email and how many stories are shown in full; the rest become a compact
    headline list. Size grows about linearly with each full story, so each try aims where
    the line through the two nearest tries meets the budget (a bisection when that did not
    halve the range): three or four renders where a plain binary search took six or seven.
    """
    if not stories:
        raise ValueError("a digest needs at least one story")

    def attempt(full: int) -> RenderedEmail:
        return render_email("digest", context.template_context(stories[:full], stories[full:]))

    over = attempt(len(stories))
    if over.sent_bytes <= budget_bytes:
        return over, len(stories)
    best, best_full = attempt(1), 1
    if best.sent_bytes > budget_bytes and context.story_detail in _LESS_DETAIL:
        # A single story with its sections is over: every story shows less instead.
        less = replace(context, story_detail=_LESS_DETAIL[context.story_detail])
        return render_digest(less, stories, budget_bytes=budget_bytes)
    # best_full fits (or is the least there is); high does not.
    high, high_bytes, bisect = len(stories), over.sent_bytes, False
    while high - best_full > 1:
        span = high - best_full
        if bisect:
            guess = best_full + span // 2
        else:
            share = (budget_bytes - best.sent_bytes) / (high_bytes - best.sent_bytes)
            guess = best_full + int(span * share)
        guess = min(max(guess, best_full + 1), high - 1)
        candidate = attempt(guess)
        if candidate.sent_bytes <= budget_bytes:
            best, best_full = candidate, guess
        else:
            high, high_bytes = guess, candidate.sent_bytes
        bisect = (high - best_full) * 2 > span
    return best, best_full
