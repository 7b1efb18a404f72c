"""Which posts go into an edition: pure functions over plain values."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Candidate:
    post_id: int
    published_at: datetime
    category: str


def select_posts(
    candidates: Iterable[Candidate],
    *,
    window_start: datetime,
    cutoff: datetime,
    categories: Collection[str],
    already_sent: Collection[int],
    limit: int,
) -> list[int]:
    """Post IDs for an edition, newest first (ties by ID, so the order is stable).

    A post qualifies when it was published in ``(window_start, cutoff]``, carries one of
    ``categories`` (any, when empty; compared without case) and is not in ``already_sent``
    (every post an edition of the list has taken, whatever that edition's date).
    """
    wanted = {c.casefold() for c in categories}
    chosen = [
        c
        for c in candidates
        if window_start < c.published_at <= cutoff
        and (not wanted or c.category.casefold() in wanted)
        and c.post_id not in already_sent
    ]
    chosen.sort(key=lambda c: (c.published_at, c.post_id), reverse=True)
    return [c.post_id for c in chosen[: max(limit, 0)]]
