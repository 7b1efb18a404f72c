"""Text from outside made safe to store, render and put in a header.

Two rules, applied wherever content enters (feeds, the CMS API, editors' forms, readers'
names) and again where it becomes a header, so no caller has to remember them:

- :func:`strip_unsafe` removes what no reader should receive and what breaks MJML or XML: C0
  and C1 control characters (tab and newline stay), Unicode noncharacters (U+FFFE, U+FFFF,
  ...) and lone surrogates.
- :func:`header_text` makes one header line. Encoded words (RFC 2047, ``=?utf-8?b?...?=``)
  are decoded first, as the mail library and every mail client will decode them, until
  nothing changes, and only then checked: a CR or LF hidden in an encoded word cannot
  become a header line of its own, whatever the Python patch level does when it re-emits
  the header.
"""

from __future__ import annotations

import re
import unicodedata
from email.headerregistry import HeaderRegistry

# C0 (but tab and newline), DEL and C1; noncharacters; lone surrogates.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff\ud800-\udfff]"
    + "".join(f"|{chr(plane << 16 | 0xFFFE)}|{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
)
# What may not survive into a header: every control character, line ends included.
_NOT_IN_HEADER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_WHITESPACE = re.compile(r"\s+")
# The mail library's own parser, so decoding here is exactly the decoding it does on output.
_PARSE = HeaderRegistry()
_MAX_DECODE_ROUNDS = 8


def strip_unsafe(value: str) -> str:
    """``value`` without control characters (but tab and newline), noncharacters and lone
    surrogates. CR LF and lone CR become newlines."""
    return _UNSAFE.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _decoded(value: str) -> str:
    """What the mail library makes of ``value`` as an unstructured header (encoded words
    decoded)."""
    return str(_PARSE("subject", value))


def _one_line(value: str) -> str:
    return _WHITESPACE.sub(" ", _NOT_IN_HEADER.sub(" ", strip_unsafe(value))).strip()


def header_text(value: str, max_length: int = 250) -> str:
    """One line fit for a header, as a reader's mail client will show it.

    Encoded words are decoded (repeatedly: one may hide another) and control characters,
    CR and LF included, become spaces; runs of white space become one space.
    """
    value = _one_line(value)
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = _one_line(_decoded(value)) if "=?" in value else value
        if decoded == value:
            break
        value = decoded
    else:
        # Nested deeper than any honest title: drop the markers that start an encoded word.
        value = value.replace("=?", "= ?")
    if len(value) > max_length:
        value = value[: max_length - 1].rstrip() + "…"
    if "=?" in value and _decoded(value) != value:  # a cut made an encoded word
        value = value.replace("=?", "= ?")
    return value


class HeaderInjection(ValueError):
    """A generated header block does not hold the headers it was built from."""


def check_header_block(block: str, expected: list[str]) -> None:
    """Refuse a generated header block whose header lines are not exactly ``expected``.

    The last line of defence: whatever a value held, the block must parse back into the
    headers that were set, in order, and nothing else.
    """
    names = [
        line.split(":", 1)[0].strip().lower()
        for line in re.split(r"\r\n|\r|\n", block)
        if line and not line[0].isspace()
    ]
    if names != [name.lower() for name in expected]:
        raise HeaderInjection(
            f"the headers {names} do not match the ones set {expected}: a value held a line break"
        )


# Languages written right to left (ISO 639 codes, as in a list's language setting).
_RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ku-arab", "ps", "sd", "syr", "ug", "ur", "yi"}
)


def language_direction(language: str) -> str:
    """``"rtl"`` for a language written right to left (``ar``, ``he-IL``, ``fa``), else
    ``"ltr"``."""
    code = language.strip().lower().replace("_", "-")
    if code in _RTL_LANGUAGES or code.split("-", 1)[0] in _RTL_LANGUAGES:
        return "rtl"
    return "ltr"


def text_direction(text: str, default: str = "ltr") -> str:
    """The direction of ``text`` by its first strongly directional character, as the Unicode
    bidirectional algorithm (and ``dir="auto"``) decides a paragraph's: ``"rtl"`` for Arabic
    or Hebrew, ``"ltr"`` for Latin; ``default`` when it has none (digits, emoji)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind == "L":
            return "ltr"
        if kind in ("R", "AL"):
            return "rtl"
    return default


_PASSWORD_IN_URL = re.compile(r"(//[^/:@]*:)[^/@]*@")


def without_password(url: str) -> str:
    """``url`` fit to print or log: a password in it replaced by ``***``. Works on URLs too
    broken to parse, which are the ones error messages quote."""
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def base36(number: int) -> str:
    """A non-negative number in digits and lowercase letters: short, and safe in any local
    part or URL path (VERP tags, tracked links' reader parts)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out
