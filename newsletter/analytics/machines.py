"""Telling a reader's click from a machine's.

Corporate mail gateways (Microsoft Safe Links, Mimecast, Proofpoint, Barracuda) fetch the
links of a message seconds after it arrives, often all of them at once; link-preview bots
say who they are; some only ask with HEAD. A click is a machine's when any of these shows.
Apple's Mail Privacy Protection fetches every image of every message on its own proxy, so
an open from it says nothing about the reader.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# User agents of link scanners and preview fetchers: a reader's browser is none of these.
_SCANNER_AGENTS = re.compile(
    r"bot\b|crawler|spider|preview|scanner|safelinks|mimecast|proofpoint|barracuda|"
    r"urldefense|forcepoint|symantec|trendmicro|fireeye|sophos|zscaler|cisco|"
    r"python-requests|python-urllib|curl/|wget/|go-http-client|okhttp|java/|libwww|"
    r"headlesschrome|phantomjs|slackbot|facebookexternalhit|whatsapp|skypeuripreview|"
    r"microsoft office|ms-office|outlook-ios|nessus|qualys",
    re.IGNORECASE,
)
# Apple's image proxy for Mail Privacy Protection fetches from Apple's own network and
# says only "Mozilla/5.0".
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")


def scanner_agent(user_agent: str) -> bool:
    """A known scanner or preview fetcher, or no user agent at all."""
    return not user_agent.strip() or bool(_SCANNER_AGENTS.search(user_agent))


def apple_proxy(user_agent: str, client_ip: str) -> bool:
    """An open fetched by Apple Mail Privacy Protection's proxy."""
    try:
        in_apple = ipaddress.ip_address(client_ip) in _APPLE_NETWORK
    except ValueError:
        in_apple = False
    return in_apple or user_agent.strip() == "Mozilla/5.0"


@dataclass(frozen=True)
class Click:
    """A buffered click or open, as the redirect saw it."""

    kind: str  # "c" a click, "o" an open
    edition_id: int
    number: int  # the link's number; 0 for an open
    ref: str  # the message's reader part ("" when it carried none we could read)
    sent_at: float  # when the message went out, Unix seconds (0: not known)
    at: float  # when it came, Unix seconds
    head: bool = False
    scanner: bool = False
    proxy: bool = False

    def encode(self) -> str:
        flags = (
            ("H" if self.head else "") + ("S" if self.scanner else "") + ("P" if self.proxy else "")
        )
        when = f"{self.sent_at:.0f}|{self.at:.3f}"
        return f"{self.kind}|{self.edition_id}|{self.number}|{self.ref}|{when}|{flags}"

    @classmethod
    def decode(cls, line: str) -> Click | None:
        """None for a line that is not an event (never raises: the buffer is not trusted)."""
        parts = line.split("|")
        if len(parts) != 7 or parts[0] not in ("c", "o"):
            return None
        try:
            return cls(
                kind=parts[0], edition_id=int(parts[1]), number=int(parts[2]), ref=parts[3][:40],
                sent_at=float(parts[4]), at=float(parts[5]), head="H" in parts[6],
                scanner="S" in parts[6], proxy="P" in parts[6],
            )  # fmt: skip
        except ValueError:
            return None


@dataclass(frozen=True)
class Rules:
    machine_seconds: float  # a click this soon after delivery is a gateway's
    burst_seconds: float  # a burst: this many seconds ...
    burst_share: float  # ... in which one message fetches this share of the edition's links


def burst_size(links_in_edition: int, share: float) -> int:
    """How many different links one message must fetch at once to be a machine: at least 3,
    so a reader opening two stories in tabs is never one, however short the edition."""
    return max(3, math.ceil(links_in_edition * share))


def classify(message: Sequence[Click], *, links_in_edition: int, rules: Rules) -> list[str]:
    """Why each of one message's events (in time order) is a machine's, or "" for a person.

    ``message`` holds every event of one message (one reader part) known so far.
    """
    reasons = []
    for click in message:
        if click.head:
            reasons.append("head")
        elif click.scanner:
            reasons.append("scanner")
        elif click.kind == "o" and click.proxy:
            reasons.append("proxy")
        elif click.sent_at and click.at - click.sent_at < rules.machine_seconds:
            reasons.append("too-soon")
        else:
            reasons.append("")
    clicks = [i for i, c in enumerate(message) if c.kind == "c"]
    needed = burst_size(links_in_edition, rules.burst_share)
    # A window sliding over the clicks, with how often each link is in it: linear in the
    # message's clicks, however many a replayed link piles up.
    in_window: Counter[int] = Counter()
    start, marked = 0, -1
    for end, index in enumerate(clicks):
        in_window[message[index].number] += 1
        while message[index].at - message[clicks[start]].at > rules.burst_seconds:
            gone = message[clicks[start]].number
            in_window[gone] -= 1
            if not in_window[gone]:
                del in_window[gone]
            start += 1
        if len(in_window) >= needed:
            for j in range(max(start, marked + 1), end + 1):
                reasons[clicks[j]] = reasons[clicks[j]] or "burst"
            marked = end
    return reasons
