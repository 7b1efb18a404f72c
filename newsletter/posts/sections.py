"""The sections of a post: each <h2> or <h3> of its body with the text that follows it.

Every route in (feed, CMS push, text article) stores the body as sanitised HTML, and the
text article's heading lines become <h2> there, so the headings are the one place a post's
structure is kept. Sections are read from it when a story is made, not stored: a post edited
at its source, or stored before sections were read, has the sections of its body as it is.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from newsletter.posts.sanitise import clean_html, clean_text, html_to_paragraphs

HEADING_CHARS = 200
_HEADING = re.compile(r"<(h[23])>(.*?)</\1>", re.DOTALL)


class Section(NamedTuple):
    """A heading and the plain text of each paragraph under it, nothing left to escape."""

    heading: str
    paragraphs: tuple[str, ...]


def sections_of(body_html: str) -> tuple[Section, ...]:
    """The post's sections in order; none if its body has no h2/h3 heading.

    Text before the first heading is the post's lead, not a section; a heading with no text
    under it is left out (the digest has nothing to show for it), and text under an empty
    heading stays in the section before it. Paragraphs are plain
    text (links, emphasis and lists flattened), escaped where they are rendered.
    """
    # Cleaned again: a body stored before today's rules, and tags normalised for the pattern.
    parts = _HEADING.split(clean_html(body_html))
    # parts: lead, then (tag, heading, text after it) for each heading.
    sections: list[Section] = []
    for index in range(1, len(parts) - 2, 3):
        heading = clean_text(parts[index + 1], max_length=HEADING_CHARS)
        paragraphs = tuple(html_to_paragraphs(parts[index + 2]))
        if heading and paragraphs:
            sections.append(Section(heading, paragraphs))
        elif paragraphs and sections:  # an empty heading does not end the section before it
            sections[-1] = sections[-1]._replace(paragraphs=sections[-1].paragraphs + paragraphs)
    return tuple(sections)
