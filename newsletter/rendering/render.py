"""Render an email once: Jinja -> MJML -> HTML -> inlined CSS, plus a plain-text part.

Templates live in ``templates/email/<name>/``: ``subject.txt``, ``body.txt`` and
``body.mjml`` (optionally ``preheader.txt``), extending ``templates/email/_base/``.
"""

from __future__ import annotations

import logging
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from email import quoprimime
from functools import cached_property, lru_cache
from typing import Any

import jinja2
import premailer
from mjml import mjml2html

from newsletter.resources import resource_path
from newsletter.text import header_text, language_direction, strip_unsafe, text_direction

_BLANK_RUNS = re.compile(r"\n{3,}")
# Where mjml-python writes a character with Rust's debug escaping (U+FE0F as "\\u{fe0f}"): in
# attribute values, and in <mj-title>, which it copies into an aria-label.
_ATTRIBUTE_VALUE = re.compile(r'(=")([^"]*)(")')
_TITLE = re.compile(r"(<mj-title>)(.*?)(</mj-title>)", re.DOTALL)
# Combining marks, format characters (ZWJ, bidi controls, tags), private use, unassigned and
# spaces other than U+0020: the characters Rust's escape_debug rewrites.
_ESCAPED_CATEGORIES = frozenset({"Mn", "Mc", "Me", "Cc", "Cf", "Co", "Cn", "Zl", "Zp", "Zs"})
_ESCAPED_EXTRA = frozenset("\uff9e\uff9f")  # halfwidth sound marks: grapheme extenders
# mjml-python reads a unitless "0" in a padding shorthand as nothing, so "0 24px" gave a
# 600 px image in a 552 px column; "0px" it reads.
_PADDING = re.compile(r'(\spadding(?:-[a-z]+)?=")([^"]*)(")')
_BARE_ZERO = re.compile(r"(?<![\w.])0(?![\w.%])")


class RenderError(RuntimeError):
    """A template or the MJML compiler failed; the message names the template."""


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered email: plain values that can cross the broker as JSON."""

    subject: str
    preheader: str
    text: str
    html: str

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @cached_property
    def sent_bytes(self) -> int:
        """The HTML part's size as it goes out: what Gmail's clipping limit counts."""
        return sent_size(self.html)


# The transfer encoding and line length of the HTML part as sent (delivery/mime_template.py).
_QP_COLUMNS = 74


def sent_size(html: str) -> int:
    """Bytes of ``html`` quoted-printable encoded, as in the message sent.

    Up to three times the UTF-8 size for Arabic or Cyrillic text: a budget of decoded bytes
    let a 98 KB edition go out at 106 KB and be clipped.
    """
    latin = html.encode("utf-8").decode("latin-1")
    return len(quoprimime.body_encode(latin, _QP_COLUMNS, "\r\n"))


def _wrap(value: str, width: int = 72) -> str:
    return textwrap.fill(value, width=width, break_long_words=False, break_on_hyphens=False)


@lru_cache(maxsize=2)
def environment(*, html: bool) -> jinja2.Environment:
    """Two environments: HTML-escaping for MJML, non-escaping for text and subjects."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_path("templates", "email")),
        autoescape=html,  # noqa: S701  (text and subjects are not HTML)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["wrap"] = _wrap
    env.filters["language_direction"] = language_direction
    env.filters["text_direction"] = text_direction
    return env


def _render(name: str, context: dict[str, Any], *, html: bool) -> str:
    try:
        return environment(html=html).get_template(name).render(context)
    except jinja2.TemplateError as error:
        raise RenderError(f"template {name}: {error}") from error


@lru_cache(maxsize=4096)
def _reference(char: str) -> str:
    if char != " " and (
        unicodedata.category(char) in _ESCAPED_CATEGORIES or char in _ESCAPED_EXTRA
    ):
        return f"&#x{ord(char):x};"
    return char


def _as_references(match: re.Match[str]) -> str:
    value = match[2]
    if not value.isascii():
        value = "".join(map(_reference, value))
    return match[1] + value + match[3]


def _zero_with_unit(match: re.Match[str]) -> str:
    return match[1] + _BARE_ZERO.sub("0px", match[2]) + match[3]


def mjml_safe(source: str) -> str:
    """``source`` with the characters mjml-python would corrupt written as numeric references.

    mjml-python (1.4.2) prints attribute values with Rust's debug escaping, so an emoji's
    variation selector or joiner reaches the reader as the text ``\\u{fe0f}``; a numeric
    reference passes through it untouched and means the same character to every client.
    Text between tags is copied as it is, so only attribute values and the title change.
    Padding shorthands get units on their zeros, which mjml-python otherwise drops.
    """
    source = _PADDING.sub(_zero_with_unit, source)
    if source.isascii():
        return source
    return _TITLE.sub(_as_references, _ATTRIBUTE_VALUE.sub(_as_references, source))


def compile_mjml(source: str) -> str:
    """MJML to HTML with no remote font imports, then CSS inlined.

    premailer keeps the <style> blocks and ``!important``: MJML's responsive columns live in
    media queries that only work from a <style> block and must win over inline widths. It
    leaves the ``width`` and ``height`` attributes MJML wrote: Outlook sizes an image by its
    pixel ``width`` attribute, which premailer would replace with the style's "100%".
    """
    try:
        # Stored content may predate the ingest checks: a control character or noncharacter
        # must not stop an edition.
        compiled = mjml2html(mjml_safe(strip_unsafe(source)), fonts={}, disable_comments=False)
    except Exception as error:  # mjml raises a bare ValueError/RuntimeError subclass
        raise RenderError(f"MJML did not compile: {error}") from error
    inliner = premailer.Premailer(
        compiled,
        keep_style_tags=True,
        strip_important=False,
        remove_classes=False,
        disable_validation=True,
        disable_basic_attributes=["width", "height"],
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    )
    html = str(inliner.transform())
    # premailer (lxml) drops MJML's "<!doctype html>", and without it every mail client and
    # browser lays the message out in quirks mode.
    if not html.lstrip()[:9].lower().startswith("<!doctype"):
        html = "<!doctype html>\n" + html
    return html


def _exists(name: str) -> bool:
    try:
        environment(html=False).get_template(name)
    except jinja2.TemplateNotFound:
        return False
    return True


def render_email(name: str, context: dict[str, Any]) -> RenderedEmail:
    """Render ``templates/email/<name>/`` with ``context``."""
    subject = header_text(_render(f"{name}/subject.txt", context, html=False))
    preheader = str(context.get("preheader", ""))
    if _exists(f"{name}/preheader.txt"):
        preheader = header_text(_render(f"{name}/preheader.txt", context, html=False), 200)
    full = {**context, "subject": subject, "preheader": preheader}
    text = _render(f"{name}/body.txt", full, html=False)
    text = _BLANK_RUNS.sub("\n\n", strip_unsafe(text)).strip() + "\n"
    html = compile_mjml(_render(f"{name}/body.mjml", full, html=True))
    return RenderedEmail(subject=subject, preheader=preheader, text=text, html=html)
