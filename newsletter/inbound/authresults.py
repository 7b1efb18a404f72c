"""Whether a message's From address is vouched for by our own mail server (RFC 8601).

The receiving mail server checks DKIM, SPF and DMARC and writes what it found in an
``Authentication-Results`` header at the top of the message. It removes any header that
claims its own authserv-id (RFC 8601, section 5), so only the topmost header, or the one
with our server's authserv-id, is beyond a sender's reach: every header below it came with
the message and may be forged.

The From address counts as authenticated when that header says DMARC passed, or that a DKIM
signature by the From domain (or a parent domain of it, DMARC's relaxed alignment) passed.
SPF alone is not enough: it vouches for the envelope sender, which need not be the From.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser

HEADER = "Authentication-Results"


@dataclass(frozen=True)
class _Result:
    """One ``method=result`` of a header, with its ``ptype.property=value`` pairs."""

    method: str
    result: str
    properties: dict[str, str] = field(default_factory=dict)


def authenticated_from(raw: bytes, from_address: str, authserv_id: str) -> bool:
    """Whether ``raw``'s From address (``from_address``) was authenticated by our server.

    With ``authserv_id`` set, only the header our server wrote under that id counts;
    empty, the topmost header does. A message without one, or one nobody can read, is not
    authenticated.
    """
    local, at, domain = from_address.strip().strip("<>").lower().rpartition("@")
    if not (local and at and domain):
        return False
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    # DMARC is defined for a message with one From; with two, we could be reading the one
    # the verdict was not about.
    if len(headers.get_all("From") or []) != 1:
        return False
    header = _ours([str(v) for v in headers.get_all(HEADER) or []], authserv_id.strip().lower())
    if header is None:
        return False
    return any(_vouches(result, domain) for result in header)


def _ours(values: list[str], authserv_id: str) -> list[_Result] | None:
    """The results of the header our server wrote, or None if there is none."""
    for value in values if authserv_id else values[:1]:
        segments = _segments(_tokens(value))
        # No authserv-id at all: not a header any server wrote for us.
        if segments[0] and (not authserv_id or segments[0][0].lower() == authserv_id):
            return _results(segments[1:])
    return None


def _vouches(result: _Result, domain: str) -> bool:
    if result.result != "pass":
        return False
    if result.method == "dmarc":
        said = result.properties.get("header.from", domain)
        return said.lower() == domain
    if result.method == "dkim":
        signer = result.properties.get("header.d", "").lower()
        # A bare top-level domain is nobody's signature: "com" aligns with nothing.
        return "." in signer and (domain == signer or domain.endswith("." + signer))
    return False


def _results(segments: list[list[str]]) -> list[_Result]:
    """``method[/version]=result`` and its properties, from each ``;``-separated part;
    a part that is not a list of ``name=value`` pairs (``none``, garbage) is skipped."""
    found = []
    for tokens in segments:
        if len(tokens) < 3 or len(tokens) % 3 or tokens[1::3] != ["="] * (len(tokens) // 3):
            continue
        names, values = tokens[0::3], tokens[2::3]
        properties = {
            name.lower(): value for name, value in zip(names[1:], values[1:], strict=True)
        }
        method = names[0].partition("/")[0].lower()
        found.append(_Result(method, values[0].lower(), properties))
    return found


def _segments(tokens: list[str]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for part in tokens:
        if part == ";":
            segments.append([])
        else:
            segments[-1].append(part)
    return segments


def _tokens(value: str) -> list[str]:
    """Words, quoted strings, ``=`` and ``;``; comments and folding whitespace dropped.

    A quoted string is one word, so ``header.d="a;b"`` cannot end a result early, and
    ``(comment; dkim=pass)`` says nothing.
    """
    tokens: list[str] = []
    word: list[str] = []
    in_word = quoted = False
    depth = 0
    chars = iter(value)
    for char in chars:
        if quoted:
            if char == '"':
                quoted = False
            else:
                word.append(next(chars, "") if char == "\\" else char)
        elif depth:
            if char == "\\":
                next(chars, "")
            else:
                depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == "(" or char in ";=" or char.isspace():
            if in_word:
                tokens.append("".join(word))
                word, in_word = [], False
            if char == "(":
                depth = 1
            elif char in ";=":
                tokens.append(char)
        else:
            in_word = True
            quoted = char == '"'
            if not quoted:
                word.append(char)
    if in_word:
        tokens.append("".join(word))
    return tokens
