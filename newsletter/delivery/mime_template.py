"""A digest's MIME message prepared once, with slots for each recipient's values.

Per recipient, personalisation joins prepared byte chunks with a few short values: no Jinja,
MJML, premailer or MIME generation. The bodies are quoted-printable, encoded here once; each
slot sits on a line of its own between soft line breaks, so a value of any length is folded
to at most 76 columns and the message keeps CRLF line ends and a valid transfer encoding.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email import quoprimime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from operator import itemgetter

from newsletter.delivery.headers import HEADERS
from newsletter.delivery.mime import DotSafe, header_line
from newsletter.rendering.placeholders import Markers
from newsletter.text import check_header_block, header_text

CRLF = "\r\n"
SOFT_BREAK = "=" + CRLF
QP_LINE = 76
# Encoded two columns short, so a leading "." can become "=2E" within 76 columns.
_QP_ENCODE_AT = QP_LINE - 2
# Characters quoted-printable leaves as they are (no "=", no white space, printable ASCII).
_QP_LITERAL = re.compile(r"[!-<>-~]*\Z")

HEADER_TO = "to"
HEADER_MESSAGE_ID = "message_id"
HEADER_LIST_UNSUBSCRIBE = "list_unsubscribe"


def _header_markers() -> dict[str, str]:
    """Stand-ins for the per-recipient headers, new for every template: no subject or name
    can contain them, so no content can take a reader's address or links."""
    key = secrets.token_hex(12)
    return {
        HEADER_TO: f"nl-slot-to-{key}@slot.invalid",
        HEADER_MESSAGE_ID: f"<nl-slot-message-id-{key}@slot.invalid>",
        HEADER_LIST_UNSUBSCRIBE: f"nl-slot-list-unsubscribe-{key}",
    }


def _no_leading_dots(encoded: str) -> str:
    """Encode the "." that starts a line as "=2E": the text then needs no SMTP dot-stuffing.

    Every chunk and slot value starts a line of its own (after a blank line or a soft break).
    """
    if encoded.startswith("."):
        encoded = "=2E" + encoded[1:]
    return encoded.replace(CRLF + ".", CRLF + "=2E")


def qp_value(value: str) -> str:
    """One slot value, quoted-printable and folded to lines of at most 76 columns."""
    if _QP_LITERAL.match(value):
        if len(value) < _QP_ENCODE_AT:
            return _no_leading_dots(value)
        step = _QP_ENCODE_AT - 1
        folded = SOFT_BREAK.join(value[i : i + step] for i in range(0, len(value), step))
        return _no_leading_dots(folded)
    latin = value.encode("utf-8").decode("latin-1")
    encoded = quoprimime.body_encode(latin, _QP_ENCODE_AT, CRLF)
    return _no_leading_dots(encoded.replace(" " + CRLF, "=20" + SOFT_BREAK))


def body_slot(part: str, role: str) -> str:
    """The slot name of a reader's value (``email``, ``unsubscribe_url``, ``preferences_url``)
    in the ``text`` or ``html`` part."""
    return f"{part}:{role}"


def _qp_body(text: str, part: str, markers: Markers) -> tuple[list[str], list[str]]:
    """Encode a body around its markers: the chunks, and the slot between each pair."""
    pieces = markers.pattern.split(text)
    chunks, slots = [], []
    for index, piece in enumerate(pieces):
        if index % 2:
            slots.append(body_slot(part, markers.role(piece)))
            continue
        latin = piece.encode("utf-8").decode("latin-1")
        encoded = _no_leading_dots(quoprimime.body_encode(latin, _QP_ENCODE_AT, CRLF))
        # The slot between two chunks gets a line of its own, bounded by soft line breaks.
        lead = SOFT_BREAK if index > 0 else ""
        tail = SOFT_BREAK if index + 1 < len(pieces) else ""
        chunks.append(lead + encoded + tail)
    return chunks, slots


@dataclass(frozen=True)
class MessageTemplate:
    """Byte chunks with a named slot between each consecutive pair."""

    chunks: tuple[bytes, ...]
    slots: tuple[str, ...]
    # The chunks at even places with room between them, and the slots' values picked in
    # order: a message is two C-level steps however many slots (a tracked edition has ~40).
    _frame: list[bytes] = field(init=False, repr=False, compare=False)
    _pick: Callable[[Mapping[str, bytes]], tuple[bytes, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.chunks) != len(self.slots) + 1:
            raise ValueError("a template has one chunk more than it has slots")
        frame: list[bytes] = [b""] * (2 * len(self.chunks) - 1)
        frame[0::2] = self.chunks
        object.__setattr__(self, "_frame", frame)
        pick = itemgetter(*self.slots) if len(self.slots) > 1 else _one(self.slots)
        object.__setattr__(self, "_pick", pick)

    def render(self, values: Mapping[str, bytes]) -> DotSafe:
        """The message with ``values`` in its slots (body values from :func:`qp_value`)."""
        out = self._frame.copy()
        out[1::2] = self._pick(values)
        return DotSafe(b"".join(out))


def _one(slots: Sequence[str]) -> Callable[[Mapping[str, bytes]], tuple[bytes, ...]]:
    """``itemgetter`` of one key gives the value, not a tuple; of none, it fails."""
    return lambda values: tuple(values[slot] for slot in slots)


def _headers(
    *, from_name: str, from_address: str, subject: str, date: str, extra: Mapping[str, str],
    boundary: str, markers: Mapping[str, str],
) -> str:  # fmt: skip
    """The header block, every value one checked line (see :mod:`newsletter.text`)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=header_text(from_name), addr_spec=from_address)
    message["To"] = markers[HEADER_TO]
    message["Subject"] = header_line(subject)
    message["Date"] = date
    message["Message-ID"] = markers[HEADER_MESSAGE_ID]
    for name, value in extra.items():
        message[name] = header_line(value)
    message["List-Unsubscribe"] = markers[HEADER_LIST_UNSUBSCRIBE]
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
    # Slot markers are ASCII words without spaces: folding never cuts or encodes one.
    head = message.as_string(policy=HEADERS).split(CRLF + CRLF, 1)[0] + CRLF
    check_header_block(head, [
        "From", "To", "Subject", "Date", "Message-ID", *extra, "List-Unsubscribe",
        "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
    ])  # fmt: skip
    return head


def compile_template(
    *, from_name: str, from_address: str, subject: str, date: str, extra_headers: Mapping[str, str],
    text: str, html: str, markers: Markers,
) -> MessageTemplate:  # fmt: skip
    """Build the template of a multipart/alternative digest: text part first, HTML last.

    ``markers`` are the ones the bodies were rendered with; header slots get markers of
    their own, made here.
    """
    boundary = "=_nl_" + secrets.token_hex(16)  # "=_" never occurs in quoted-printable
    header_markers = _header_markers()
    head = _headers(
        from_name=from_name, from_address=from_address, subject=subject, date=date,
        extra=extra_headers, boundary=boundary, markers=header_markers,
    )  # fmt: skip
    text_chunks, text_slots = _qp_body(text, "text", markers)
    html_chunks, html_slots = _qp_body(html, "html", markers)

    def part(content_type: str) -> str:
        return (
            f'--{boundary}{CRLF}Content-Type: {content_type}; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        )

    # One flat sequence of strings and slot names, then split into chunks at the slots.
    sequence: list[tuple[str, str]] = []
    for name, marker in header_markers.items():
        head = head.replace(marker, f"\x00{name}\x00")
    for piece in re.split("\x00", head):
        sequence.append(("slot", piece) if piece in header_markers else ("text", piece))
    sequence.append(("text", CRLF + part("text/plain")))
    _interleave(sequence, text_chunks, text_slots)
    sequence.append(("text", CRLF + part("text/html")))
    _interleave(sequence, html_chunks, html_slots)
    sequence.append(("text", f"{CRLF}--{boundary}--{CRLF}"))

    chunks: list[bytes] = []
    slots: list[str] = []
    current: list[str] = []
    for kind, value in sequence:
        if kind == "slot":
            chunks.append("".join(current).encode("ascii"))
            slots.append(value)
            current = []
        else:
            current.append(value)
    chunks.append("".join(current).encode("ascii"))
    return MessageTemplate(tuple(chunks), tuple(slots))


def _interleave(
    sequence: list[tuple[str, str]], chunks: Sequence[str], slots: Sequence[str]
) -> None:
    for index, chunk in enumerate(chunks):
        sequence.append(("text", chunk))
        if index < len(slots):
            sequence.append(("slot", slots[index]))
