"""Personalisation benchmark: messages from an edition prepared once, against a naive
per-recipient full render (Jinja + MJML + premailer + EmailMessage) of the same edition.

Prints JSON lines {"metric", "value", "unit"}:
  personalise_msgs_per_s     per-recipient messages from the prepared edition (this pipeline),
                             each with its signed VERP envelope sender
  personalise_no_verp_msgs_per_s   the same without a bounce address (From as envelope sender)
  personalise_tracked_anonymous_msgs_per_s    personalise_msgs_per_s's pipeline, the story
                             links tracked (/r/<link>/<reader>, as a list with click tracking
                             renders them): one more slot per message, a random signed part
  personalise_tracked_individual_msgs_per_s   the same, reader parts naming the delivery
  message_bytes              size of one such message
  naive_msgs_per_s           full render + EmailMessage per recipient (the baseline)
  speedup_vs_naive           ratio of the two

Usage: taskset -c 0 python bench/personalise.py [--recipients 20000]   (one core)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from render import BUDGET, CONTEXT, emit, prepared, stories  # bench/ is on sys.path when run

from newsletter.analytics.links import link_token
from newsletter.delivery.prepared import Recipient
from newsletter.delivery.verp import ReturnPath
from newsletter.models import ClickTracking
from newsletter.rendering.digest import Story, render_digest


def tracked(items: list[Story]) -> list[Story]:
    """The stories' links as a list with click tracking has them (editions/build.py)."""
    return [
        dataclasses.replace(
            story,
            url=f"https://news.example.com/r/{link_token('bench', 1, number)}/"
            f"{CONTEXT.markers.reader}",
        )
        for number, story in enumerate(items, start=1)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20000)
    args = parser.parse_args()

    items = stories(10)
    email, _ = render_digest(CONTEXT, items, budget_bytes=BUDGET)
    return_path = ReturnPath.parse("bounces@mail.example.com", "bench")
    fast = 0.0
    for metric, path in (("personalise_no_verp_msgs_per_s", None),
                         ("personalise_msgs_per_s", return_path)):  # fmt: skip
        started = time.perf_counter()
        # Prepared once per batch in production.
        edition = prepared(email.html, email.text, email.subject, return_path=path)
        for i in range(args.recipients):
            edition.personalise(Recipient(i, i, f"reader{i}@example.com"))
        fast = args.recipients / (time.perf_counter() - started)
        emit(metric, fast, "msgs/s")
    emit("message_bytes", len(edition.personalise(Recipient(1, 1, "r@example.com")).data), "bytes")

    # Tracked links: the reader part is one more slot per message, in every story link.
    linked, _ = render_digest(CONTEXT, tracked(items), budget_bytes=BUDGET)
    for metric, tracking in (
        ("personalise_tracked_anonymous_msgs_per_s", ClickTracking.ANONYMOUS),
        ("personalise_tracked_individual_msgs_per_s", ClickTracking.INDIVIDUAL),
    ):
        started = time.perf_counter()
        edition = dataclasses.replace(
            prepared(linked.html, linked.text, linked.subject, return_path=return_path),
            click_tracking=tracking,
        )
        for i in range(args.recipients):
            edition.personalise(Recipient(i, i, f"reader{i}@example.com"))
        emit(metric, args.recipients / (time.perf_counter() - started), "msgs/s")
    sample = edition.personalise(Recipient(7, 7, "r@example.com")).data.replace(b"=\r\n", b"")
    if b"__NL_" in sample or b"/d7." not in sample:
        raise SystemExit("the tracked links' reader part was not filled in")

    # The baseline renders everything again per recipient and builds MIME with EmailMessage.
    naive_count = max(args.recipients // 100, 20)
    started = time.perf_counter()
    for i in range(naive_count):
        again, _ = render_digest(CONTEXT, items, budget_bytes=BUDGET)
        prepared(again.html, again.text, again.subject).personalise_slowly(
            Recipient(i, i, f"reader{i}@example.com")
        )
    naive = naive_count / (time.perf_counter() - started)
    emit("naive_msgs_per_s", naive, "msgs/s")
    emit("speedup_vs_naive", fast / naive, "x")


if __name__ == "__main__":
    main()
