"""Returned-mail benchmark: our classify against flufl.bounce alone, on the bounce corpus.

Every message in tests/data/bounces/ is classified ROUNDS times from its raw bytes on one core:
once by newsletter.inbound.classify (kind, recipients, categories, original message) and once
by flufl.bounce's scan_message after parsing (failed addresses only, what Mailman does). Both
sides start from the bytes in every pass, so both pay for parsing; the passes alternate.

Prints JSON lines {"metric", "value", "unit"}:
  classify_msgs_per_s        our classify, raw bytes to Report
  flufl_msgs_per_s           email.message_from_bytes + flufl.bounce.scan_message
  classify_vs_flufl          ratio of the two (at least 1 is the goal)
  corpus_messages            messages in the corpus
  found_share                failed recipients of expected.json that classify found
  hard_precision             classify's "hard" verdicts whose address is truly dead
  complaints_recognised      ARF complaints classified as complaints, of all complaints
  auto_replies_as_bounce     auto-replies classified as bounces (0 is the goal)
  crashes                    messages whose reading failed inside classify

Usage: taskset -c 0 python bench/inbound.py [--rounds 20]   (one core)
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import time
from collections.abc import Callable
from pathlib import Path

from flufl.bounce import scan_message

from newsletter.inbound.classify import Report, classify

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "bounces"


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit}), flush=True)


def rates(work: list[bytes], rounds: int, *readers: Callable[[bytes], object]) -> list[float]:
    """Messages per second of each reader over ``work``, the best of ``rounds`` passes.

    The readers take turns pass by pass, so a busy spell on the machine (other jobs share
    the core) slows both sides of the comparison, not whichever happened to run then."""
    best = [float("inf")] * len(readers)
    for _ in range(rounds):
        for index, read in enumerate(readers):
            started = time.perf_counter()
            for raw in work:
                read(raw)
            best[index] = min(best[index], time.perf_counter() - started)
    return [len(work) / seconds for seconds in best]


def flufl_alone(raw: bytes) -> object:
    # The cheapest parse flufl.bounce accepts: compat32 with no header objects, the whole
    # message (its detectors read the body). classify is timed from the same bytes.
    return scan_message(email.message_from_bytes(raw, policy=email.policy.compat32))


def figures(expected: dict[str, dict[str, object]], reports: dict[str, Report]) -> None:
    truth = {
        (name, str(r["address"]).lower()): str(r["category"])
        for name, entry in expected.items()
        for r in entry["recipients"]  # type: ignore[attr-defined]
    }
    found = sum(
        address in {r.address.lower() for r in reports[name].recipients} for name, address in truth
    )
    hard = [
        truth.get((name, r.address.lower())) == "hard"
        for name, report in reports.items()
        for r in report.recipients
        if r.category == "hard" and r.address
    ]
    complaints = [n for n, e in expected.items() if e["kind"] == "complaint"]
    auto = [n for n, e in expected.items() if e["kind"] == "auto_reply"]
    emit("corpus_messages", len(reports), "messages")
    emit("found_share", 100 * found / len(truth), "%")
    emit("hard_precision", 100 * sum(hard) / len(hard), "%")
    emit("complaints_recognised", sum(reports[n].kind == "complaint" for n in complaints), "of "
         f"{len(complaints)}")  # fmt: skip
    emit("auto_replies_as_bounce", sum(reports[n].kind == "bounce" for n in auto), "messages")
    crashes = sum(any(d.startswith("unreadable") for d in r.defects) for r in reports.values())
    emit("crashes", crashes, "messages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    expected = json.loads((CORPUS / "expected.json").read_text())
    work = [(CORPUS / name).read_bytes() for name in sorted(expected)]
    ours, theirs = rates(work, args.rounds, classify, flufl_alone)
    emit("classify_msgs_per_s", ours, "msg/s")
    emit("flufl_msgs_per_s", theirs, "msg/s")
    emit("classify_vs_flufl", ours / theirs, "x")
    figures(
        expected, {name: classify(raw) for name, raw in zip(sorted(expected), work, strict=True)}
    )


if __name__ == "__main__":
    main()
