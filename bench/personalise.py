"""Personalisation benchmark: messages from an edition prepared once, against a naive
per-recipient full render (Jinja + MJML + premailer + EmailMessage) of the same edition.

Prints JSON lines {"metric", "value", "unit"}:
  personalise_msgs_per_s     per-recipient messages from the prepared edition (this pipeline),
                             each with its signed VERP envelope sender
  personalise_no_verp_msgs_per_s   the same without a bounce address (From as envelope sender)
  message_bytes              size of one such message
  naive_msgs_per_s           full render + EmailMessage per recipient (the baseline)
  speedup_vs_naive           ratio of the two

Usage: taskset -c 0 python bench/personalise.py [--recipients 20000]   (one core)
"""

from __future__ import annotations

import argparse
import time

from render import BUDGET, CONTEXT, emit, prepared, stories  # bench/ is on sys.path when run

from newsletter.delivery.prepared import Recipient
from newsletter.delivery.verp import ReturnPath
from newsletter.rendering.digest import render_digest


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
