"""What a message that came back to us is, and whose fault a failed delivery was.

:func:`classify` takes the raw bytes of one returned message and gives a :class:`Report`: its
kind (bounce, complaint, auto-reply, delivery report, unsubscribe request or other), every
recipient it reports on, and what it says about the mail we sent (the original's Message-ID,
recipient and return path). It is pure: no database, no settings, no clock, and it never
raises, whatever the bytes are; what was wrong with a message is listed in ``defects``.

How a message is read, first match wins:

1. A feedback report (RFC 5965 ARF, which Microsoft's JMRP, Yahoo's and AOL's loops also send)
   is a ``complaint``.
2. A delivery status notification (RFC 3464) is read field by field, without running any
   heuristic detector: a ``bounce`` when one recipient failed or was delayed, a
   ``delivery_report`` when every recipient was delivered, relayed or expanded.
3. An auto-reply (RFC 3834 headers, or an out-of-office subject) is ``auto_reply`` and never a
   bounce. ``Auto-Submitted: auto-replied`` alone is not enough when the message looks like a
   bounce, because Exim and others put that header on their non-standard bounces too.
4. A request sent to the unsubscribe address, or whose subject starts with "unsubscribe", is
   ``unsubscribe``.
5. A message that looks like a bounce (from a mailer-daemon or postmaster, an empty return
   path, a subject such as "Undelivered Mail") goes to ``flufl.bounce`` (Mailman's detectors
   for the non-standard bounces of Exim, qmail, Exchange, Yahoo, ...), which is given only
   the top of each text part; the diagnostic is the text around each address it finds. When
   it finds none, addresses in the text whose surroundings give a reason are taken; else the
   bounce keeps one recipient with an empty address. Anything else is ``other``.

Whose fault: the category
-------------------------
``hard`` says the address is dead, ``soft`` that the reader's side has a passing problem,
``sender`` that our own mail or reputation was refused, which must never count against the
reader. The enhanced status code alone cannot tell: servers answer ``5.7.1`` for "no such
user" and for "rejected as spam", ``5.1.1`` with a blocklist text, and Office 365 says
``5.4.1 Recipient address rejected: Access denied`` for an unknown recipient. So
:data:`RULES`, a table of (pattern, category, reason), is matched in order against the status
code and the diagnostic text together:

- specific replies that would otherwise be mistaken (Office 365's unknown recipient, disabled
  or suspended accounts) come first, then a full mailbox;
- then what is surely about us: blocklists and reputation, DMARC/SPF/DKIM, rate limits,
  viruses, spam and content filters, relaying, message size;
- then dead addresses (unknown user, no such domain), then passing trouble (time-outs,
  deferrals, expiry);
- then vague refusals ("policy", "blocked", "denied", "rejected"): about us;
- and only then the status code on its own (``5.1.1`` hard, ``5.2.2`` soft, ``5.7.x``
  sender, ...).

Two rules follow the table. A temporary status (``4.x.x``) is never ``hard``: the server
itself said it might work later, so a "4.1.1 user unknown" that expired is ``soft``. And a
recipient whose report says ``delayed`` is a warning: ``soft`` with reason ``delayed``.

An unknown permanent failure (a ``5.x.x`` or a ``550`` with no text the table knows, or a
non-standard bounce with no readable diagnostic) is ``soft`` with reason ``unknown``, not
``hard``: a hard bounce stops mail to a reader on one message, and a guess would stop readers
whose server was misconfigured for an afternoon. A dead address keeps bouncing, so soft
bounces still add up to a removal under the bounce policy, only more slowly.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from functools import cached_property
from typing import Literal

from flufl.bounce import all_failures

from newsletter.text import header_text

__all__ = [
    "RULES",
    "Action",
    "Category",
    "Kind",
    "RecipientReport",
    "Report",
    "categorise",
    "classify",
    "report_json",
]

Kind = Literal["bounce", "complaint", "auto_reply", "delivery_report", "unsubscribe", "other"]
Category = Literal["hard", "soft", "sender"]
Action = Literal["failed", "delayed", "delivered"]


@dataclass(frozen=True)
class RecipientReport:
    """What a returned message says about one recipient.

    ``category`` and ``reason`` only mean something for a failed or delayed recipient; a
    delivered one (listed only in a ``delivery_report``) has ``soft`` and ``delivered``.
    """

    address: str  # the recipient we sent to, domain lower-cased; "" when none could be found
    status: str  # enhanced status code such as "5.1.1", "" if none
    action: Action
    category: Category
    reason: str  # short snake_case: user_unknown, mailbox_full, spam, ... (see RULES)
    diagnostic: str = ""  # the SMTP reply or the text around the address, one line
    remote_mta: str = ""


@dataclass(frozen=True)
class Report:
    """One returned message, read. The ``original_*`` fields come from the copy of our mail
    that it carries (message/rfc822, text/rfc822-headers or the ARF part), when it has one."""

    kind: Kind
    recipients: tuple[RecipientReport, ...] = ()
    original_message_id: str = ""
    original_recipient: str = ""  # ARF Original-Rcpt-To / Removal-Recipient, or the original To
    original_mail_from: str = ""  # ARF Original-Mail-From, or the original Return-Path
    feedback_type: str = ""  # ARF Feedback-Type: abuse, fraud, ...
    from_address: str = ""  # this message's From: (who asks to unsubscribe by email)
    subject: str = ""  # decoded, one line
    body_text: str = ""  # the first 4 KB of the decoded text/plain body
    defects: tuple[str, ...] = ()  # what was malformed; a malformed message never raises


# Past this, a message is cut before parsing: the report and the original's headers come
# first, and what follows is the original's body, which nothing here needs.
MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 20  # parts nested deeper than this are not looked into
MAX_PARTS = 500
MAX_DIAGNOSTIC = 500
MAX_BODY_TEXT = 4096
DETECTOR_LINES = 60  # lines of each text part that flufl.bounce's detectors read

# --- whose fault ---------------------------------------------------------------------------

Rule = tuple[re.Pattern[str], Category, str]


def _rule(pattern: str, category: Category, reason: str, starts: str) -> Rule:
    """A rule whose matches can only begin with one of the characters in ``starts``.

    The regex engine tries every alternative of a pattern at every position of the text, and
    the table was a third of the time a bounce took to read. Led by a character class, the
    engine skips from one candidate character to the next instead, and only there looks back
    one character (the lookbehind) to try the pattern itself: the same matches, about twice
    as fast. ``starts`` must hold every character a match can begin with; the tests check it.
    """
    # Patterns are lower case and matched against lower-cased text: much faster than IGNORECASE.
    first = "".join(re.escape(character) for character in starts)
    return re.compile(f"[{first}](?<=(?=(?:{pattern})).)"), category, reason


_ACCOUNT = r"(?:account|mailbox|user|address|recipient|e-?mail)"

RULES: tuple[Rule, ...] = (
    # Office 365 answers an unknown recipient with this (its directory-based edge blocking).
    _rule(
        r"recipient address rejected: access denied|5\.4\.1 .{0,80}access denied",
        "hard",
        "user_unknown",
        "5r",
    ),
    _rule(
        rf"{_ACCOUNT}(?: \S+){{0,3}} (?:is |has been |was )?(?:currently )?(?:disabled|"
        r"deactivated|suspended|inactive|closed|discontinued|locked|terminated|expired|"
        r"not active|blocked due to inactivity)|\b(?:disabled|inactive|suspended|deactivated|"
        rf"closed|discontinued|expired) {_ACCOUNT}|no longer (?:active|in use)|"
        r"\[#102\]|5\.7\.13",
        "hard",
        "mailbox_disabled",
        "5[acdeimnrsu",
    ),
    # A refusal of our own envelope, client or HELO: about us, whatever words follow ("Sender
    # address rejected: Domain not found" must never read as a dead reader's domain).
    _rule(
        r"sender address rejected|sender (?:verify|verification) failed|domain of sender|"
        r"helo command rejected|client host rejected|sender not found|"
        r"sender (?:is )?(?:not allowed|denied|blocked|rejected)|\b5\.1\.[78]\b",
        "sender",
        "policy",
        "5cdhs",
    ),
    # Our own sending quota at a provider, before "quota" is taken for a full mailbox.
    _rule(r"sending (?:quota|limit)|daily .{0,20}quota", "sender", "rate_limited", "ds"),
    _rule(
        r"(?:mail ?box|in ?box|account|user|recipient)(?:'s)?(?: \S+){0,2} (?:is |was )?(?:full|"
        r"over ?quota)|over ?quota|quota (?:exceeded|exceed|full)|exceed(?:s|ed)? (?:\S+ ){0,3}"
        r"quota|insufficient (?:disk |storage )?space|(?:storage|disk) (?:limit|space|full)|"
        r"mailbox size limit|full mailbox|out of (?:disk |storage )?space|"
        r"too many messages (?:in|on)|(?:disk|mail) quota|quota violation|reached (?:\S+ )?quota|"
        r"exceeding (?:\S+ ){0,2}quota|mail ?box exceeds|mail ?folder is full|too much mail|"
        r"[45]\.2\.2",
        "soft",
        "mailbox_full",
        "45adefimoqrstu",
    ),
    # Surely about us: our addresses, our reputation, our message.
    _rule(
        r"spamhaus|spamcop|barracuda|sorbs|dnsbl|\brbl\b|uribl|surbl|black ?list|"
        r"block ?list|blocked using|(?<!not )listed (?:at|in|on|by)|\bis listed\b|reputation|"
        r"senderscore|cloudmark|\bbl\d{2}\b|\brp-?00\d|\brl\d{2}\b",
        "sender",
        "blocked",
        "bcdilrsu",
    ),
    _rule(
        r"dmarc|\bspf\b|dkim|unauthenticated|authenticat|not authorized to send|"
        r"reverse dns|\bptr\b|rdns|5\.7\.2[3-9]|5\.7\.1[5-9]|5\.7\.8\b",
        "sender",
        "authentication",
        "5adnprsu",
    ),
    _rule(
        r"rate limit|too many (?:connections|messages from|recipients|mails from)|throttl|"
        r"unusual rate|exceeded (?:the )?(?:\S+ )?(?:rate|sending limit)|\bts0\d\b|"
        r"4\.7\.28|sending limit",
        "sender",
        "rate_limited",
        "4erstu",
    ),
    _rule(r"virus|malware|infected|trojan|worm\b", "sender", "virus", "imtvw"),
    _rule(
        r"spam|unsolicited|junk|bulk mail|content filter|phish|suspicious|"
        r"scl=|looks like|5\.7\.350|message content|\bube\b",
        "sender",
        "spam",
        "5bcjlmpsu",
    ),
    _rule(
        r"relay(?:ing)? (?:denied|not permitted|access denied|prohibited|not allowed)|"
        r"(?:not permitted|not allowed|unable|cannot|can't) (?:to )?relay|"
        r"we do not relay|not a (?:gateway|relay)|no relaying|relaying|as a relay|"
        # qmail's answer for a domain it does not receive mail for: relaying refused.
        r"isn't in my (?:list of allowed )?rcpthosts",
        "sender",
        "relaying",
        "acinruw",
    ),
    _rule(
        r"message (?:size|length)|(?:too large|too big)|exceeds (?:the )?(?:\S+ )?(?:size|"
        r"maximum)|size limit|attachments|embedded images|[45]\.3\.4|[45]\.2\.3",
        "sender",
        "content",
        "45aemst",
    ),
    # Challenge-response systems want us to prove we are human.
    _rule(
        r"requires confirmation|pre-?approved|whitelist|allowed list|verification",
        "sender",
        "policy",
        "aprvw",
    ),
    # A name server that failed for now, reported when the message expired.
    _rule(
        r"host not found, try again|temporary failure in name resolution|servfail",
        "soft",
        "expired",
        "hst",
    ),
    # A forwarding or alias loop at the reader's end: their setup, and it can be fixed.
    _rule(
        r"mail(?:ing)? loop|(?:forwarding|alias(?:ing)?) loop|too many hops|loop detected|"
        r"loops back",
        "soft",
        "loop",
        "aflmt",
    ),
    # The address is dead.
    _rule(
        r"host (?:or domain name )?(?:not found|unknown)|domain (?:name )?(?:not found|"
        r"does not exist|doesn't exist|unknown|is not valid|not exist)|no such domain|"
        r"unknown (?:host|domain)|unrouteable (?:mail )?domain|unroutable domain|\bno mx\b|"
        r"\bmx (?:record )?not found|nxdomain|name or service not known|null mx|"
        r"couldn't find any host|could not find any host|no (?:valid )?(?:mx|dns) records?|"
        r"domain .{0,40}(?:has no|lacks) (?:mx|mail)",
        "hard",
        "no_such_domain",
        "cdhmnu",
    ),
    _rule(
        r"user(?:name)? unknown|unknown (?:user|recipient|mailbox|address|local[- ]?part|"
        r"account|alias)|no such (?:user|recipient|mailbox|address|account|person|local)|"
        r"(?:does not|doesn't|not) exist|invalid (?:recipient|mailbox|address|user|account)|"
        r"(?:recipient|address|user) (?:address )?rejected|mailbox (?:not found|"
        r"unknown)|no mailbox|not (?:a )?(?:valid|known) (?:recipient|mailbox|"
        r"user|address|account)|is not a valid|user not found|recipient not found|"
        r"address not found|not our customer|addressee unknown|illegal alias|"
        r"unrouteable address|no longer (?:valid|available|exists)|not listed in|"
        r"bad destination mailbox|no user by that name|no account|"
        rf"{_ACCOUNT}(?: \S+){{0,2}} not found|unknown or illegal|"
        rf"{_ACCOUNT}(?: \S+){{0,3}} no longer|"
        r"recipient rejected|no such|does not have an account|"
        r"is not a known|unknown e-?mail|undeliverable address|not known|"
        r"(?:does not|doesn't) have an? (?:\S+ )?account|no mail ?box|not an? active|"
        r"bad[_ ]recipient|invalid (?:final delivery )?user ?id|not a valid user|"
        r"did not (?:exactly )?match an? (?:\S+ ){0,3}address|no matches to nameserver query|"
        r"(?:does not|doesn't) have a (?:final )?(?:e-?mail )?delivery point|n'existe pas|"
        r"existiert nicht|unbekannt|nie istnieje|no existe",
        "hard",
        "user_unknown",
        "abdeimnru",
    ),
    # RFC 5321's text for any 550, which servers give for unknown users and policy refusals
    # alike: soft unless the status code names a dead address (see categorise).
    _rule(
        r"mailbox (?:\S+ ){0,2}unavailable|mailbox not available",
        "soft",
        "mailbox_unavailable",
        "m",
    ),
    # Passing trouble on the reader's side.
    _rule(
        r"expired|too long|timed? ?out|time-?out|temporarily suspended|"
        r"connection (?:refused|reset|closed|lost|dropped|died)|lost connection|"
        r"retry (?:time|timeout)|giving up|temporar|try (?:again|later)|deferred|"
        r"unable to connect|could not connect|network is unreachable|no route to host|"
        r"failed \d+ attempts|delivery attempts|not been collected|"
        r"[45]\.4\.7",
        "soft",
        "expired",
        "45cdefglnrtu",
    ),
    # Vague refusals: the server did not want our message.
    _rule(
        r"policy|prohibited|blocked|denied|refused|banned|not (?:allowed|permitted|accepted)|"
        r"rejected|blacklisted|administrative|not accepting mail",
        "sender",
        "policy",
        "abdnpr",
    ),
    # The status code on its own, when no text told more.
    _rule(r"\b[45]\.1\.[0136]\b", "hard", "user_unknown", "45"),
    _rule(r"\b[45]\.1\.(?:2|10)\b|\b[45]\.4\.4\b", "hard", "no_such_domain", "45"),
    _rule(r"\b[45]\.2\.1\b", "hard", "mailbox_disabled", "45"),
    _rule(r"\b[45]\.1\.[78]\b", "sender", "policy", "45"),
    _rule(r"\b5\.7\.\d{1,3}\b", "sender", "policy", "5"),
    _rule(r"\b4\.7\.\d{1,3}\b", "sender", "rate_limited", "4"),
)

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ENHANCED_FAILURE = re.compile(r"\b[45]\.\d{1,3}\.\d{1,3}\b")
_BASIC = re.compile(r"(?:^|[\s;:(\[#])([245])\d\d(?=[\s\-.,:)\]]|$)")


def _status_class(status: str, diagnostic: str, assume: str) -> str:
    """'4' or '5' (or '2'), from the status field, else the diagnostic; ``assume`` if neither
    says."""
    for text in (status, diagnostic):
        found = _ENHANCED.search(text)
        if found:
            return found.group(1)
    found = _BASIC.search(diagnostic)
    return found.group(1) if found else assume


# Enhanced status codes that name a dead address: bad mailbox, bad domain, disabled.
_DEAD_CODES = re.compile(r"\b5\.1\.(?:1|2|10)\b|\b5\.2\.1\b")


def categorise(
    status: str, diagnostic: str, *, action: Action = "failed", assume_class: str = ""
) -> tuple[Category, str]:
    """The category and reason of one failed or delayed recipient (see the module docstring).

    ``assume_class`` is the status class to suppose when neither the status nor the diagnostic
    gives one (a non-standard bounce that did not quote the server's reply).
    """
    if action == "delayed":
        return "soft", "delayed"
    text = f"{status} {diagnostic}".lower()
    for pattern, category, reason in RULES:
        if pattern.search(text):
            if category == "hard" and _status_class(status, diagnostic, assume_class) == "4":
                return "soft", reason
            if reason == "mailbox_unavailable" and _DEAD_CODES.search(text):
                return "hard", "user_unknown"
            return category, reason
    if _status_class(status, diagnostic, assume_class) == "4":
        return "soft", "expired"
    return "soft", "unknown"


# --- reading the message -------------------------------------------------------------------

_AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autoreply-from",
                       "x-mail-autoreply", "x-vacation")  # fmt: skip
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\W*(?:(?:re|aw|sv|fw|tr)\s*:\s*)*(?:out of (?:the )?office|out-of-office|"
    r"automatic reply|automatische antwort|auto[- ]?(?:matic )?(?:reply|response|respond|"
    r"responder|antwort|svar)|autoreply|autoresponse|abwesenheit|vacation|on vacation|"
    r"away from (?:my |the )?(?:office|desk|email)|absence|absent|i am (?:currently )?out|"
    r"i'm (?:currently )?out|réponse automatique|reponse automatique|respuesta automática|"
    r"respuesta automatica|risposta automatica|automatisch antwoord|afwezig|"
    r"fuera de (?:la )?oficina|hors du bureau|autosvar|automaattinen vastaus|"
    r"odpowied[zź] automatyczna|automatyczna odpowied[zź]|nieobecno|urlaub|congés|conges|"
    r"ooo\b)",
    re.IGNORECASE,
)
# Phrases that say auto-reply wherever they stand in a subject ("AUTO: Jo is out of the office").
_AUTO_REPLY_PHRASE = re.compile(
    r"\bout of (?:the )?office\b|\bautomatic reply\b|\bauto-?reply\b|abwesenheitsnotiz|"
    r"^\s*auto:|thank you for your (?:e-?mail|message)|\bis (?:currently )?away\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|problem|has failed|"
    r"notification|report)|returned mail|returned to sender|failure notice|"
    r"mail delivery (?:failed|failure|system|subsystem)|could not be delivered|"
    r"non[- ]?delivery|not delivered|bounce|warning: could not|message status|"
    r"delivery error|mail system error|rejected|nondeliverable|failed mail|"
    r"delayed mail|delivery delayed|error sending|permanent error|^mail error|user unknown|"
    r"delivery warning|^warning:",
    re.IGNORECASE,
)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon", "maildaemon", "mailerdaemon")
_UNSUBSCRIBE_SUBJECT = re.compile(r"^\W*unsubscribe\b", re.IGNORECASE)
_MESSAGE_ID_LINE = re.compile(r"^message-id:[ \t]*(<[^>\s]{1,250}>)", re.IGNORECASE | re.M)
# Where the explanation of one address ends in a human-readable bounce.
_END_OF_REPORT = re.compile(
    r"original message|below this line|copy of the message|message removed|"
    r"message follows|unsent message|returned mail follows|^\s*(?:from|subject|to):",
    re.IGNORECASE,
)
_LONE_ADDRESS = re.compile(r"^[\s*>-]*<?[^\s@<>]+@[^\s@<>]+>?:?\s*$")
_ANGLED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[\w.-]{1,20}\s*;\s*")


# RFC 6533's global (UTF-8) form, and one seen from XWall.
_DELIVERY_STATUS = (
    "message/delivery-status",
    "message/global-delivery-status",
    "message/xdelivery-status",
)

_REPORT_PARTS = (*_DELIVERY_STATUS, "message/feedback-report")


class _Parts:
    """What one walk over the message found: the parts a report is made of."""

    def __init__(self) -> None:
        self.delivery_status: list[Message] = []
        self.feedback: list[Message] = []
        self.original: Message | None = None
        self.original_parts: list[Message] = []
        self.leaves: list[tuple[Message, str, bool]] = []  # not multipart: content type, inside?
        self.text: Message | None = None
        self.defects: list[str] = []


def _walk(message: Message, defects: list[str]) -> Iterator[tuple[Message, str, bool]]:
    """Every part with its content type and whether it is inside a returned original
    (message/rfc822), depth first without recursion. The header blocks of a delivery status
    or feedback report are not parts. Stops at MAX_DEPTH and MAX_PARTS, noting it in
    ``defects``."""
    stack: list[tuple[Message, int, bool]] = [(message, 0, False)]
    seen = 0
    while stack:
        part, depth, inside = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            defects.append("too_many_parts")
            return
        ctype = part.get_content_type()
        yield part, ctype, inside
        # is_multipart, not get_payload: a leaf's get_payload looks up its transfer encoding
        # and copies its whole text to look for surrogates, for every part of every message.
        if not part.is_multipart() or ctype in _REPORT_PARTS:
            continue
        if depth >= MAX_DEPTH:
            defects.append("nested_too_deep")
            continue
        nested = inside or ctype == "message/rfc822"
        payload = part.get_payload()
        children = [child for child in payload if isinstance(child, Message)]
        stack.extend((child, depth + 1, nested) for child in reversed(children))


def _find_parts(message: Message) -> _Parts:
    parts = _Parts()
    for part, ctype, inside in _walk(message, parts.defects):
        for defect in getattr(part, "defects", ()):
            parts.defects.append(type(defect).__name__)
        if not part.is_multipart():
            parts.leaves.append((part, ctype, inside))
        if inside:
            continue
        if ctype in _DELIVERY_STATUS:
            parts.delivery_status.append(part)
        elif ctype == "message/feedback-report":
            parts.feedback.append(part)
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            parts.original_parts.append(part)
            if parts.original is None:
                parts.original = _inner_message(part)
        elif ctype == "text/plain" and parts.text is None and part is not message:
            parts.text = part
    if parts.text is None and not message.is_multipart():
        parts.text = message
    return parts


def _inner_message(part: Message) -> Message | None:
    """The message a message/rfc822 or text/rfc822-headers part carries."""
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = payload[0] if payload else None
        return inner if isinstance(inner, Message) else None
    return HeaderParser(policy=email.policy.compat32).parsestr(_decoded_text(part))


def _decoded_text(part: Message) -> str:
    """A leaf part's payload as text, whatever its transfer encoding and charset claim."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _one_line(value: str, limit: int = MAX_DIAGNOSTIC) -> str:
    # str.split and the regex \s agree on what white space is; splitting is the faster.
    return " ".join(value.split())[:limit]


def _header(message: Message, name: str) -> str:
    """A header's value as one line of text; "" when missing or unreadable."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(value)
        if "=?" not in text:  # the common case, without decoding's cost
            return _one_line(_CONTROL.sub(" ", text))
        return header_text(text, max_length=MAX_DIAGNOSTIC)
    except Exception:  # a header the mail library cannot decode is treated as absent
        return ""


def _normalise(address: str) -> str:
    """``address`` without brackets, its domain lower-cased; "" if it is no address."""
    address = address.strip().strip("<>").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return ""
    return f"{local}@{domain.lower()}"


def _typed_address(value: str) -> str:
    """The address in an ``rfc822; user@example.com`` field."""
    kind, semicolon, rest = value.partition(";")
    if not semicolon:
        rest = kind
    elif kind.strip().lower() not in ("rfc822", ""):
        return ""
    # Some MTAs write the type twice: "rfc822; rfc822;user@example.com".
    while rest.strip().lower().startswith("rfc822;"):
        rest = rest.strip()[7:]
    rest = rest.strip()
    return _address_of(rest) or ("" if any(c.isspace() for c in rest) else _normalise(rest))


def _address_of(value: str) -> str:
    """The address in a header such as ``"Name, Jr." <user@example.com>`` ("" if none): the
    one in angle brackets, else the first that looks like one. Much cheaper than parseaddr,
    and bounces are read by the thousand."""
    found = _ANGLED.search(value) or _ADDRESS.search(value)
    return _normalise(found.group(found.lastindex or 0)) if found else ""


# --- delivery status notifications ---------------------------------------------------------


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part: per message, then per recipient."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, Message)]
        inner = blocks[0].get_payload() if len(blocks) == 1 else None
        if not isinstance(inner, str) or not inner.strip():
            return blocks
        # A message/* type the parser does not know (feedback-report, xdelivery-status) is
        # read as one message: its headers are the first block, its body the others.
        parser = HeaderParser(policy=email.policy.compat32)
        chunks = re.split(r"\n\s*\n", inner.replace("\r\n", "\n"))
        return blocks + [parser.parsestr(chunk) for chunk in chunks if chunk.strip()]
    # Encoded (base64, quoted-printable) or built in code: parse the blocks from the text.
    text = _decoded_text(part).replace("\r\n", "\n")
    parser = HeaderParser(policy=email.policy.compat32)
    return [parser.parsestr(chunk) for chunk in re.split(r"\n\s*\n", text) if chunk.strip()]


def _dsn_recipients(parts: _Parts, human_text: _Lines) -> list[RecipientReport]:
    reports: dict[tuple[str, str], RecipientReport] = {}
    for part in parts.delivery_status:
        blocks = _status_blocks(part)
        for block in blocks[1:] or blocks:
            report = _dsn_recipient(block, human_text)
            # Alias expansion can report one address many times: once is enough.
            if report is not None:
                reports.setdefault((report.address, report.action), report)
    return list(reports.values())


def _dsn_recipient(block: Message, human_text: _Lines) -> RecipientReport | None:
    original = _typed_address(_header(block, "original-recipient"))
    final = _typed_address(_header(block, "final-recipient"))
    address = original or final
    action_field = _header(block, "action").lower()
    status_match = _ENHANCED.search(_header(block, "status"))
    status = status_match.group(0) if status_match else ""
    if not action_field and not status and not address:
        return None  # the per-message block, or noise
    action = _action(action_field, status)
    diagnostic = _DIAGNOSTIC_TYPE.sub("", _header(block, "diagnostic-code"))
    if not diagnostic and action != "delivered":
        diagnostic = _text_near(human_text, address)[1]
    remote = _DIAGNOSTIC_TYPE.sub("", _header(block, "remote-mta"))
    if action == "delivered":
        category: Category = "soft"
        reason = "delivered"
    else:
        category, reason = categorise(status, diagnostic, action=action)
    return RecipientReport(
        address=address, status=status, action=action, category=category, reason=reason,
        diagnostic=_one_line(diagnostic), remote_mta=_one_line(remote, 250),
    )  # fmt: skip


def _action(field: str, status: str) -> Action:
    if field.startswith(("delivered", "relayed", "expanded")):
        return "delivered"
    if field.startswith("delayed"):
        return "delayed"
    if field.startswith(("fail", "error")):
        return "failed"
    # No Action (or a made-up one): the status class decides.
    if status.startswith("2"):
        return "delivered"
    return "delayed" if status.startswith("4") else "failed"


# --- non-standard bounces ------------------------------------------------------------------


class _Lines:
    """A bounce's text, split into lines once however many addresses are looked up in it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._kinds: dict[int, tuple[bool, bool]] = {}
        # Addresses on the same lines of a bounce are explained by the same text.
        self.verdicts: dict[tuple[str, Action], tuple[Category, str]] = {}

    def stops(self, index: int) -> tuple[bool, bool]:
        """Whether line ``index`` ends a report (the quoted original starts) and whether it is
        an address alone: asked again for every address whose explanation reaches it."""
        found = self._kinds.get(index)
        if found is None:
            line = self.lines[index]
            found = bool(_END_OF_REPORT.search(line)), bool(_LONE_ADDRESS.match(line))
            self._kinds[index] = found
        return found

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    @cached_property
    def lowered(self) -> list[str]:
        return [line.lower() for line in self.lines]

    @cached_property
    def lowered_text(self) -> str:
        # Joined by newlines: an address, which holds no line break, is in it only if it is
        # in one of the lines.
        return "\n".join(self.lowered)


def _text_near(text: _Lines, address: str) -> tuple[str, str, str]:
    """Where a human-readable bounce explains ``address``: the line before the one naming it,
    the lines from that one to the next blank line (at most five), and a longer stretch (up
    to ten lines, past separators, until the quoted original or another address starts).
    Servers put their reply after the address, after a "Technical details" rule, or, for a
    list of addresses, in the sentence above it."""
    if not text.text or not address:
        return "", "", ""
    # The whole address if the text has it, else its local part ("mykewlaolacct" on AOL's).
    needle = address.lower()
    if needle not in text.lowered_text:
        needle = address.rpartition("@")[0].lower()
        if len(needle) < 3 or needle not in text.lowered_text:
            return "", "", ""
    lines, lowered = text.lines, text.lowered
    for index, line in enumerate(lines):
        if needle not in lowered[index]:
            continue
        window = [line]
        for following in lines[index + 1 : index + 6]:
            if not following.strip():
                if len(window) > 1:
                    break
                continue
            window.append(following)
        longer = [line]
        for after in range(index + 1, min(index + 11, len(lines))):
            ends, lone = text.stops(after)
            if ends or (lone and needle not in lowered[after]):
                break
            longer.append(lines[after])
        before = next((b for b in reversed(lines[max(0, index - 3) : index]) if b.strip()), "")
        return _one_line(before), _one_line(" ".join(window)), _one_line(" ".join(longer))
    return "", "", ""


def _text_recipient(address: str, action: Action, text: _Lines) -> RecipientReport:
    """A recipient of a non-standard bounce, its diagnostic read from the text around it:
    the closest text that the rules can tell something from."""
    before, near, longer = _text_near(text, address)
    diagnostic = near
    category: Category = "soft"
    reason = "unknown"
    candidates = [near] + ([longer] if longer != near else [])
    for candidate in candidates + ([_one_line(f"{before} {near}")] if before else []):
        verdict = text.verdicts.get((candidate, action))
        if verdict is None:
            verdict = categorise("", candidate, action=action, assume_class="5")
            text.verdicts[candidate, action] = verdict
        category, reason = verdict
        if reason != "unknown":
            diagnostic = candidate
            break
    found = _ENHANCED.search(diagnostic)
    return RecipientReport(
        address=address, status=found.group(0) if found else "", action=action,
        category=category, reason=reason, diagnostic=diagnostic,
    )  # fmt: skip


def _shorten_for_detectors(message: Message, parts: _Parts) -> None:
    """Cut what the detectors read to what can name a failed address. They match every line
    of every text part against dozens of patterns; the explanation is at the top of a bounce,
    and the body of our own mail, returned below it, names none."""
    for part, ctype, inside in parts.leaves:
        payload = part.get_payload()
        if not isinstance(payload, str):
            continue
        if inside or not ctype.startswith(("text/", "message/")):
            part.set_payload("")  # our own mail's body, images, attachments
        elif payload.count("\n") > DETECTOR_LINES:
            part.set_payload("\n".join(payload.split("\n", DETECTOR_LINES)[:DETECTOR_LINES]))


def _flufl_recipients(
    message: Message, parts: _Parts, text: _Lines, defects: list[str]
) -> list[RecipientReport]:
    _shorten_for_detectors(message, parts)
    try:
        temporary, permanent = all_failures(message)
    except Exception as error:  # a detector tripping on odd input is a defect, not a crash
        defects.append(f"detector_error:{type(error).__name__}")
        return []
    failed = [_normalise(a.decode("ascii", errors="replace")) for a in sorted(permanent)]
    delayed = [_normalise(a.decode("ascii", errors="replace")) for a in sorted(temporary)]
    reports = [_text_recipient(a, "failed", text) for a in failed if a]
    reports += [_text_recipient(a, "delayed", text) for a in delayed if a and a not in failed]
    return reports


def _addresses_in_text(message: Message, text: _Lines) -> list[RecipientReport]:
    """The last resort for a bounce no detector read: addresses in its text whose
    surroundings say why they failed. Ours (From, To, Return-Path) and postmasters are not
    recipients."""
    ours = {_address_of(_header(message, name)).lower() for name in ("from", "to", "return-path")}
    candidates: list[str] = []
    for match in _ADDRESS.finditer(text.text[:MAX_BODY_TEXT]):
        address = _normalise(match.group(0).rstrip("."))
        local = address.partition("@")[0].lower()
        if address.lower() not in ours and local not in _BOUNCE_SENDERS:
            candidates.append(address)
    reports = [_text_recipient(a, "failed", text) for a in list(dict.fromkeys(candidates))[:5]]
    return [report for report in reports if report.reason != "unknown"]


def _looks_like_bounce(message: Message, subject: str, from_address: str) -> bool:
    sender = from_address.partition("@")[0].lower()
    if sender in _BOUNCE_SENDERS or "mailer-daemon" in _header(message, "from").lower():
        return True
    return bool(_BOUNCE_SUBJECT.search(subject)) or _header(message, "return-path") == "<>"


def _is_auto_reply(message: Message, subject: str, bouncy: bool) -> bool:
    # One pass over the header names instead of a search through every header per name.
    present = {name.lower() for name in message}
    if not present.isdisjoint(_AUTO_REPLY_HEADERS):
        return _header(message, "x-autoreply").lower() not in ("no", "false")
    precedence = _header(message, "precedence") if "precedence" in present else ""
    if precedence.lower().startswith("auto_reply"):
        return True
    # A bounce's subject may quote ours ("Undeliverable: Holiday plans"): not an auto-reply.
    if _AUTO_REPLY_SUBJECT.search(subject) or _AUTO_REPLY_PHRASE.search(subject):
        return not _BOUNCE_SUBJECT.search(subject)
    if bouncy or "auto-submitted" not in present:
        return False
    return _header(message, "auto-submitted").lower().startswith("auto-replied")


# --- the whole message ---------------------------------------------------------------------


def _parse(raw: bytes, defects: list[str]) -> Message:
    if len(raw) > MAX_BYTES:
        raw = raw[:MAX_BYTES]
        defects.append("truncated_input")
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _original_fields(parts: _Parts, human_text: str) -> dict[str, str]:
    fields = {"message_id": "", "recipient": "", "mail_from": ""}
    original = parts.original
    if original is not None:
        fields["message_id"] = _one_line(_header(original, "message-id"), 250)
        fields["recipient"] = _address_of(_header(original, "to"))
        fields["mail_from"] = _address_of(_header(original, "return-path"))
    if not fields["message_id"] and human_text:
        # Non-MIME bounces quote the original below a line of their own.
        found = _MESSAGE_ID_LINE.search(human_text)
        if found:
            fields["message_id"] = found.group(1)
    return fields


def _feedback_fields(part: Message) -> dict[str, str]:
    blocks = _status_blocks(part)
    fields: dict[str, str] = {}
    for block in blocks:
        for name in ("feedback-type", "original-rcpt-to", "removal-recipient",
                     "original-mail-from"):  # fmt: skip
            if name not in fields and block.get(name) is not None:
                fields[name] = _header(block, name)
    return fields


def _human_text(parts: _Parts) -> str:
    """The decoded text of the message's first text/plain part: its body, or in a bounce the
    explanation for people."""
    return "" if parts.text is None else _decoded_text(parts.text)


def classify(raw: bytes, *, addressed_to_unsubscribe: bool = False) -> Report:
    """Read one message that came back to us (see the module docstring for the order of the
    rules). Never raises: what could not be read is listed in the report's ``defects``."""
    defects: list[str] = []
    try:
        return _classify(raw, addressed_to_unsubscribe, defects)
    except Exception as error:  # the promise is to never raise; say what broke instead
        defects.append(f"unreadable:{type(error).__name__}")
        return Report(kind="other", defects=tuple(dict.fromkeys(defects)))


def _classify(raw: bytes, addressed_to_unsubscribe: bool, defects: list[str]) -> Report:
    message = _parse(raw, defects)
    parts = _find_parts(message)
    defects.extend(parts.defects)
    subject = _header(message, "subject")
    from_address = _address_of(_header(message, "from"))
    human = _human_text(parts)
    body = human[:MAX_BODY_TEXT]
    original = _original_fields(parts, body)
    common = {
        "original_message_id": original["message_id"],
        "original_recipient": original["recipient"],
        "original_mail_from": original["mail_from"],
        "from_address": from_address,
        "subject": subject,
        "body_text": body,
    }

    def report(kind: Kind, recipients: list[RecipientReport], **extra: str) -> Report:
        fields = {**common, **extra}
        return Report(
            kind=kind, recipients=tuple(recipients), defects=tuple(dict.fromkeys(defects)),
            **fields,
        )  # fmt: skip

    if parts.feedback:
        arf = _feedback_fields(parts.feedback[0])
        recipient = _address_of(arf.get("original-rcpt-to") or arf.get("removal-recipient", ""))
        return report(
            "complaint", [], feedback_type=arf.get("feedback-type", "").lower(),
            original_recipient=recipient or original["recipient"],
            original_mail_from=_address_of(arf.get("original-mail-from", ""))
            or original["mail_from"],
        )  # fmt: skip
    if parts.delivery_status:
        recipients = _dsn_recipients(parts, _Lines(body))
        if recipients:
            failed = [r for r in recipients if r.action != "delivered"]
            if failed:
                return report("bounce", failed)
            return report("delivery_report", recipients)
    bouncy = bool(parts.delivery_status) or _looks_like_bounce(message, subject, from_address)
    if _is_auto_reply(message, subject, bouncy):
        return report("auto_reply", [])
    if not bouncy and (addressed_to_unsubscribe or _UNSUBSCRIBE_SUBJECT.search(subject)):
        return report("unsubscribe", [])
    if bouncy:
        lines = _Lines(human)
        recipients = _flufl_recipients(message, parts, lines, defects)
        recipients = recipients or _addresses_in_text(message, lines)
        return report("bounce", recipients or [_unknown_recipient(human)])
    if addressed_to_unsubscribe:
        return report("unsubscribe", [])
    return report("other", [])


def failure_status(text: str) -> str:
    """The first enhanced status code of a failure (4.x.x or 5.x.x) in ``text``, or ""."""
    found = _ENHANCED_FAILURE.search(text)
    return found.group(0) if found else ""


def _unknown_recipient(text: str) -> RecipientReport:
    """A bounce whose failed address nobody could find: kept, so the operator sees it."""
    text = _one_line(text, 1000)
    category, reason = categorise("", text, assume_class="5")
    return RecipientReport(
        address="", status=failure_status(text), action="failed",
        category=category, reason=reason,
    )  # fmt: skip


def report_json(report: Report, file: str) -> dict[str, object]:
    """The report as a JSON-ready dict for ``newsletter inbound parse --format json``."""
    result: dict[str, object] = {
        "file": file,
        "kind": report.kind,
        "recipients": [
            {
                "address": r.address,
                "status": r.status,
                "action": r.action,
                "category": r.category,
                "reason": r.reason,
            }
            for r in report.recipients
        ],
    }
    if report.defects:
        result["defects"] = list(report.defects)
    if report.original_message_id:
        result["original_message_id"] = report.original_message_id
    return result
