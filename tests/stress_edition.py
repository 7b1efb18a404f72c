"""A 25-post stress edition: the text a real edition can carry that breaks email the most.

Right-to-left titles and deks (Arabic, Hebrew, mixed with English), emoji with variation
selectors, ZWJ sequences, skin tones, flags and keycaps, U+00A0, U+200B, U+200E/F and U+202E,
very long unbroken words and URLs (in text and as links, some with non-ASCII paths), and no
images. For the reference MJML compiler, SpamAssassin, browser and size checks.

Three ways in, from the same table:

- :func:`stress_stories` and :data:`STRESS_CONTEXT`: the digest's own input, for render-level
  tests (``render_digest(STRESS_CONTEXT, stress_stories(), budget_bytes=...)``). The text is
  exactly as written here, U+00A0 included.
- :func:`stress_posts`: the same posts as a feed or the CMS hands them over (``PostIn``).
  Ingest folds U+00A0 into a space, as it folds all white space in one-line fields.
- :func:`stress_edition`: a list (:data:`STRESS_LIST`), its readers and its built edition,
  through the product's own functions, for tests that need what is really sent.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions.build import build_edition
from newsletter.lists.schedule import edition_cutoff, local_date
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import Edition
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.schema import PostIn
from newsletter.rendering.digest import DigestContext, Story
from newsletter.subscriptions.service import Signup, import_subscribers

NBSP, ZWSP, LRM, RLM, RLO, PDF = "\u00a0", "\u200b", "\u200e", "\u200f", "\u202e", "\u202c"
WARNING, HEART = "\u26a0\ufe0f", "\u2764\ufe0f"  # ⚠️ ❤️: each with VS16
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧: ZWJ sequence
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈: VS16 and ZWJ
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"  # 👍🏽: skin tone modifier
UKRAINE = "\U0001f1fa\U0001f1e6"  # 🇺🇦: regional indicators
KEYCAP_ONE = "1\ufe0f\u20e3"  # 1️⃣
SUN_AS_TEXT = "\u2600\ufe0e"  # ☀︎: VS15, text presentation
# Every character above that mjml-python is known to mangle in attributes (issue 13).
INVISIBLES = (NBSP, ZWSP, LRM, RLM, RLO, PDF, "\ufe0f", "\ufe0e", "\u200d")

LONG_WORD = "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft"
LONG_TOKEN = "0x" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" * 2
LONG_TEXT_URL = "https://www.shortlysts.com/" + "a-very-long-path-segment-without-breaks-" * 6
SITE = "https://www.shortlysts.com"

STRESS_CATEGORIES = ("العالم", "חדשות", f"Weather {WARNING}", f"Family {FAMILY}", "Long reads")
STRESS_LIST = ListSpec(
    slug="world",
    name="Shortlysts World",
    from_address="digest@shortlysts.example.com",
    from_name="Shortlysts",
    timezone="UTC",
    categories=list(STRESS_CATEGORIES),
    description="The stress edition: every script and symbol a post may carry.",
)
STRESS_READERS = [Signup("reader@example.com", "Stress Reader")]
STRESS_CONTEXT = DigestContext(
    list_name=STRESS_LIST.name,
    language="en",
    edition_date=date(2025, 5, 16),
    site_name="Shortlysts",
    site_url=SITE,
    postal_address="Shortlysts, 1 Example Street, Springfield",
    archive_url=f"{SITE}/archive/world/2025-05-16",
)


@dataclass(frozen=True)
class StressPost:
    title: str
    dek: str
    summary: str
    category: str
    url: str


def _story_text(subject: str) -> str:
    return (
        f"{subject} The story runs on for a few sentences so the summary is as long as a real "
        "one, with enough words to wrap over several lines on a phone."
    )


def _arabic(n: int) -> StressPost:
    return StressPost(
        title=f"الأمطار الغزيرة تغلق الطرق في المدينة رقم {n}.",
        dek=f"قال المسؤولون إن المياه ارتفعت{NBSP}٣٠ سم خلال ساعة واحدة، وأُغلقت المدارس.",
        summary=(
            "أعلنت السلطات المحلية حالة الطوارئ بعد أن غمرت المياه الشوارع الرئيسية، "
            f"وطلبت من السكان البقاء في منازلهم حتى صباح الغد. {WARNING}"
        ),
        category="العالم",
        url=f"{SITE}/ar/الأخبار/عاجل-{n}",
    )


def _hebrew(n: int) -> StressPost:
    return StressPost(
        title=f"הממשלה אישרה את התקציב החדש לשנה הבאה ({n}).",
        dek=f"השרים הצביעו{NBSP}12 בעד ו־7 נגד; {RLM}הדיון נמשך עד הבוקר.",
        summary=(
            "התקציב כולל הגדלה של ההוצאה על חינוך ובריאות, וקיצוץ בתקציבי המשרדים "
            "האחרים כדי לעמוד ביעד הגירעון שנקבע בתחילת השנה."
        ),
        category="חדשות",
        url=f"{SITE}/he/news/budget-{n}",
    )


def _mixed(n: int) -> StressPost:
    return StressPost(
        title=f"Talks in {LRM}القاهرة{LRM} and {LRM}ירושלים{LRM} end with a deal {HEART} ({n})",
        dek=f"Both sides signed at 10{NBSP}p.m.; the text is due on Monday{NBSP}{KEYCAP_ONE}.",
        summary=_story_text(f"Negotiators from both sides {THUMBS_UP_MEDIUM} met again."),
        category="חדשות",
        url=f"{SITE}/world/talks-{n}?ref=%E2%9A%A0&lang=ar",
    )


def _emoji(n: int) -> StressPost:
    return StressPost(
        title=f"{WARNING} Storm warning {HEART} for the coast, day {n}",
        dek=f"Winds of 120{NBSP}km/h expected {SUN_AS_TEXT} after noon {RAINBOW_FLAG} {UKRAINE}.",
        summary=_story_text(f"Forecasters {WARNING} upgraded the alert overnight."),
        category=f"Weather {WARNING}",
        url=f"{SITE}/weather/⚠️-storm-{n}",
    )


def _family(n: int) -> StressPost:
    return StressPost(
        title=f"{FAMILY} Families return home after the flood ({n})",
        dek=f"Volunteers{ZWSP}and{ZWSP}neighbours helped {FAMILY} clear the streets.",
        summary=_story_text(f"Schools reopen on Monday {FAMILY} {THUMBS_UP_MEDIUM}."),
        category=f"Family {FAMILY}",
        url=f"{SITE}/local/families-{n}",
    )


def _long_words(n: int) -> StressPost:
    return StressPost(
        title=f"The {LONG_WORD} files, part {n}",
        dek=f"Read the leaked ledger at {LONG_TEXT_URL} and check the hash {LONG_TOKEN}.",
        summary=_story_text(f"The {LONG_WORD} has {ZWSP}{LONG_WORD}{ZWSP} in its name twice."),
        category="Long reads",
        url=f"{SITE}/long/{n}/" + "segment-" * 40 + "end?utm_source=newsletter&utm_medium=email",
    )


def _spoofed(n: int) -> StressPost:
    return StressPost(
        title=f"Attachment named invoice{RLO}fdp.exe{PDF} fooled {n} offices",
        dek=f"A right-to-left override (U+202E){NBSP}made “exe” look like “pdf”.",
        summary=_story_text(f"Security teams saw report{RLO}cod.scr{PDF} in inboxes."),
        category="Long reads",
        url=f"{SITE}/security/rlo-{n}",
    )


_KINDS = (_arabic, _hebrew, _mixed, _emoji, _family, _long_words, _spoofed)
STRESS_POST_COUNT = 25


def stress_table() -> list[StressPost]:
    """The 25 posts, newest first: each kind in turn, so RTL and emoji stories sit among the
    full stories and, past the size budget, among the headlines."""
    return [_KINDS[i % len(_KINDS)](i + 1) for i in range(STRESS_POST_COUNT)]


def stress_stories() -> list[Story]:
    """The stories as the digest gets them, text exactly as written (no images)."""
    return [
        Story(
            title=p.title,
            url=p.url,
            dek=p.dek,
            summary=p.summary,
            category=p.category,
            image_url=None,
            image_alt="",
        )
        for p in stress_table()
    ]


def _body_html(post: StressPost) -> str:
    return (
        f"<h2>What Happened?</h2><p>{html.escape(post.summary)}</p>"
        f"<h2>Why it Matters</h2><p>{html.escape(_story_text(post.dek))}</p>"
    )


def stress_posts(newest: datetime) -> list[PostIn]:
    """The posts as a feed hands them over, one minute apart, the first at ``newest``."""
    return [
        PostIn(
            guid=f"stress-{i + 1}",
            url=p.url,
            title=p.title,
            dek=p.dek,
            body_html=_body_html(p),
            category=p.category,
            published_at=newest - timedelta(minutes=i),
        )
        for i, p in enumerate(stress_table())
    ]


def stress_edition(
    session: Session,
    *,
    now: datetime,
    settings: Settings,
    readers: list[Signup] = STRESS_READERS,
) -> Edition:
    """:data:`STRESS_LIST` with ``readers`` and today's edition of the stress posts, built
    and committed. The list takes only the stress posts' categories, so other posts in the
    database stay out of it."""
    nl = create_list(session, STRESS_LIST)
    day = local_date(nl.timezone, now)
    cutoff = edition_cutoff(nl.schedule, nl.timezone, day, now)
    upsert_posts(session, stress_posts(cutoff - timedelta(minutes=10)))
    import_subscribers(session, nl, readers, now=now, source="test")
    edition = build_edition(session, nl, day, now=now, settings=settings).edition
    session.commit()
    return edition
