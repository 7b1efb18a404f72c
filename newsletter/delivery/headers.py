"""Header lines written as every mail client reads them.

Lines are folded at their spaces to at most 76 columns where the words allow (RFC 5322 asks
for 78). Text beyond ASCII (a subject, a display name, a list's name) becomes RFC 2047
encoded words of at most 75 characters; an ASCII word is never encoded, so a URL in
``List-Unsubscribe``, a ``Message-ID`` or a prepared message's slot marker stays whole, if
need be on a line of its own (up to 998 octets).

The mail library's own folding does neither: it encodes a long ASCII value that has no space
to fold at, which clients do not decode in those headers, and Python 3.11 drops the space
between two words whenever a fold falls on it between two encoded words ("الغزيرة تغمر"
arrives as "الغزيرةتغمر").
"""

from __future__ import annotations

import base64
import unicodedata
from email.headerregistry import AddressHeader, UnstructuredHeader
from email.policy import EmailPolicy

LINE = 76
CRLF = "\r\n"
# An encoded word on a continuation line follows one space: 75 characters at most.
_ENCODED_WORD = LINE - 1
_CHROME = len("=?utf-8?b??=")
# Bytes Q-encoding may leave as they are in a phrase as well as in unstructured text.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# What stays with the character before it: marks (variation selectors and keycaps among
# them), format characters (joiners, directional marks, emoji tags) and skin tones.
_ATTACHED = frozenset({"Mn", "Mc", "Me", "Cf"})
_SKIN_TONES = ("\U0001f3fb", "\U0001f3ff")
_REGIONAL = ("\U0001f1e6", "\U0001f1ff")  # two make a flag
_JOINER = "\u200d"

# A header's value as tokens: (True, an ASCII word written as it is) or (False, a run of
# text to write as encoded words).
Token = tuple[bool, str]


def _q_length(data: bytes) -> int:
    return sum(1 if byte in _Q_SAFE or byte == 0x20 else 3 for byte in data)


def _b_length(data: bytes) -> int:
    return -(-len(data) // 3) * 4


def _encoded(text: str, q: bool) -> str:
    data = text.encode("utf-8")
    if not q:
        return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="
    encoded = "".join(
        chr(byte) if byte in _Q_SAFE else "_" if byte == 0x20 else f"={byte:02X}" for byte in data
    )
    return f"=?utf-8?q?{encoded}?="


def _attaches(piece: str, character: str) -> bool:
    """Whether ``character`` belongs to the cluster ``piece`` (see :func:`_clusters`)."""
    return (
        piece.endswith(_JOINER)
        or unicodedata.category(character) in _ATTACHED
        or _SKIN_TONES[0] <= character <= _SKIN_TONES[1]
        or (
            len(piece) == 1
            and _REGIONAL[0] <= piece <= _REGIONAL[1]
            and _REGIONAL[0] <= character <= _REGIONAL[1]
        )
    )


def _clusters(text: str, longest: int) -> list[str]:
    """``text`` in the pieces an encoded word may end after: a character with the marks,
    joiners, variation selectors and skin tones that follow it, the character a joiner
    joins, a flag's two letters (close to grapheme clusters); a piece longer than
    ``longest`` bytes in single characters."""
    pieces: list[str] = []
    for character in text:
        if pieces and _attaches(pieces[-1], character):
            pieces[-1] += character
        else:
            pieces.append(character)
    return [
        part
        for piece in pieces
        for part in ([piece] if len(piece.encode("utf-8")) <= longest else list(piece))
    ]


def encoded_words(text: str, first: int, rest: int = _ENCODED_WORD) -> list[str]:
    """``text`` as encoded words, the first at most ``first`` characters long ("" when
    nothing fits there) and each other at most ``rest``; Q or B, whichever is shorter.

    A word ends after a space where one allows, else between two clusters (see
    :func:`_clusters`), never inside a character: mail clients join the words with nothing
    between them (RFC 2047, 6.2), and those that wrongly put a space there then show two
    spaces instead of cutting a word or an emoji in two.
    """
    data = text.encode("utf-8")
    q = _q_length(data) <= _b_length(data)
    length = _q_length if q else _b_length
    room = rest - _CHROME
    pieces = _clusters(text, room // 3 if q else room // 4 * 3)
    words: list[str] = []
    start, limit = 0, first
    while start < len(pieces):
        end = start
        while end < len(pieces):
            if _CHROME + length("".join(pieces[start : end + 1]).encode("utf-8")) > limit:
                break
            end += 1
        if end == start and limit >= rest:  # too narrow for anything: one piece a word
            end += 1
        if end < len(pieces):
            spaces = [k for k in range(start + 1, end) if pieces[k] == " "]
            end = spaces[-1] + 1 if spaces else end
        words.append(_encoded("".join(pieces[start:end]), q) if end > start else "")
        start, limit = end, rest
    return words


def fold(name: str, tokens: list[Token], width: int = LINE) -> str:
    """``name: value`` from its tokens, folded before a space so that each line is at most
    ``width`` columns where the words allow, with CRLF line ends."""
    head = f"{name}:"
    lines = [head]
    for literal, text in tokens:
        if literal:
            if text and lines[-1] != head and len(lines[-1]) + 1 + len(text) > width:
                lines.append("")
            lines[-1] += " " + text
            continue
        rest = min(width - 1, _ENCODED_WORD)
        first, *others = encoded_words(text, min(width - len(lines[-1]) - 1, rest), rest)
        if first:
            lines[-1] += " " + first
        lines.extend(" " + word for word in others)
    return CRLF.join(lines) + CRLF


def _words(value: str) -> list[Token]:
    """Unstructured text as tokens: ASCII words as they are, and each run of words beyond
    ASCII, with the spaces inside it, as one text to encode (the white space between two
    encoded words is not text)."""
    tokens: list[Token] = []
    for word in value.split(" "):
        if tokens and not tokens[-1][0] and (not word.isascii() or not word):
            tokens[-1] = (False, tokens[-1][1] + " " + word)
        else:
            tokens.append((word.isascii(), word))
    return tokens


def _mailboxes(value: AddressHeader) -> list[Token] | None:
    """An address header as tokens: each display name encoded whole (its commas and quotes
    included), each address as it is; None for what this does not write (groups, addresses
    beyond ASCII)."""
    tokens: list[Token] = []
    for group in value.groups:
        if group.display_name is not None:
            return None
        for address in group.addresses:
            if not address.addr_spec.isascii():
                return None
            if address.display_name:
                tokens += [(False, address.display_name), (True, f"<{address.addr_spec}>")]
            else:
                tokens.append((True, address.addr_spec))
            tokens[-1] = (True, tokens[-1][1] + ",")
    if not tokens:
        return None
    tokens[-1] = (True, tokens[-1][1][:-1])
    return tokens


def folded_value(name: str, value: str, width: int = LINE) -> str:
    """What follows ``name: `` on the header lines of an ASCII ``value``: folded before a
    space so that each line is at most ``width`` columns where the words allow, nothing
    encoded. :class:`HeaderFolding` writes every ASCII header so, and a prepared message's
    per-reader values are folded with it (a few string operations per reader)."""
    words = value.split(" ")
    column = len(name) + 2 + len(words[0])
    out = [words[0]]
    for word in words[1:]:
        if word and column + 1 + len(word) > width:
            out.append(CRLF + " " + word)
            column = 1 + len(word)
        else:
            out.append(" " + word)
            column += 1 + len(word)
    return "".join(out)


class HeaderFolding(EmailPolicy):
    """The SMTP policy, writing headers as this module's docstring says. A header beyond
    ASCII that is neither text nor mailboxes goes to the mail library (none of ours is)."""

    def fold(self, name: str, value: str) -> str:
        width = self.max_line_length or LINE
        if str(value).isascii():
            folded = f"{name}: {folded_value(name, str(value), width)}{CRLF}"
        elif (tokens := _tokens(value)) is not None:
            folded = fold(name, tokens, width)
        else:
            return str(super().fold(name, value))
        return folded.replace(CRLF, self.linesep)

    def fold_binary(self, name: str, value: str) -> bytes:
        if not str(value).isascii() and _tokens(value) is None:
            return super().fold_binary(name, value)
        return self.fold(name, value).encode("ascii")


def _tokens(value: str) -> list[Token] | None:
    """A header beyond ASCII as tokens, if it is text or mailboxes."""
    if isinstance(value, UnstructuredHeader):
        return _words(str(value))
    if isinstance(value, AddressHeader):
        return _mailboxes(value)
    return None


HEADERS = HeaderFolding(linesep=CRLF, max_line_length=LINE)
