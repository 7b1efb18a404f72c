"""Clicks over an edition's first hours as an inline SVG bar chart: drawn on the server, no
script, readable by a screen reader (its title and description say what it shows) and
printable. A pure function of the hours; every piece of text in it is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from newsletter.analytics.report import HourClicks

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 44
HUMAN_COLOUR = "#b3261e"
MACHINE_COLOUR = "#9ca3af"
AXIS_COLOUR = "#4b5563"
HOUR_TICKS = 6  # a label every six hours
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BASE_Y = TOP + PLOT_H


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value``, so the axis
    reads in round numbers."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _text(x: float, y: float, words: str, **attributes: str) -> str:
    extra = "".join(f' {name.replace("_", "-")}="{escape(v)}"' for name, v in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(words)}</text>'


def describe(hours: Sequence[HourClicks]) -> str:
    """The chart in one or two sentences, for its ``<desc>`` and the page around it."""
    human = sum(h.human for h in hours)
    machine = sum(h.machine for h in hours)
    span = f"the first {len(hours)} hours after sending began"
    if not human and not machine:
        return f"No clicks in {span}."
    said = f"{human:,} human and {machine:,} machine clicks in {span}."
    if human:
        peak = max(hours, key=lambda h: (h.human, -h.hour))
        said += f" Human clicks peaked at {peak.human:,} in hour {peak.hour + 1}."
    return said


def clicks_chart(hours: Sequence[HourClicks], *, title: str, id_prefix: str = "clicks") -> str:
    """An ``<svg>`` of human and machine clicks per hour, side by side, hour 1 on the left."""
    top = nice_ceiling(max((max(h.human, h.machine) for h in hours), default=0) or 1)
    ids = escape(id_prefix)
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="100%" role="img" aria-labelledby="{ids}-title {ids}-desc" '
            'font-family="sans-serif" font-size="12">',
            f'<title id="{ids}-title">{escape(title)}</title>',
            f'<desc id="{ids}-desc">{escape(describe(hours))}</desc>',
            *_grid(top),
            *_bars(hours, top),
            *_axes(max(len(hours), 1)),
            *_legend(),
            "</svg>",
        ]
    )


def _grid(top: int) -> list[str]:
    """Lines at zero, half way and the top, labelled with their number of clicks."""
    lines = []
    for tick in sorted({0, top // 2, top}):
        y = BASE_Y - PLOT_H * tick / top
        lines.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e5e7eb"/>'
        )
        lines.append(_text(LEFT - 6, y + 4, f"{tick:,}", text_anchor="end", fill=AXIS_COLOUR))
    return lines


def _bars(hours: Sequence[HourClicks], top: int) -> list[str]:
    slot_w = PLOT_W / max(len(hours), 1)
    bar_w = max(slot_w * 0.4, 1.0)
    bars = []
    for h in hours:
        x = LEFT + h.hour * slot_w + slot_w * 0.1
        for offset, count, colour, kind in (
            (0.0, h.human, HUMAN_COLOUR, "human"),
            (bar_w, h.machine, MACHINE_COLOUR, "machine"),
        ):
            if not count:
                continue
            height = PLOT_H * count / top
            said = f"Hour {h.hour + 1}: {count:,} {kind} click{'s' if count != 1 else ''}"
            bars.append(
                f'<rect x="{x + offset:.1f}" y="{BASE_Y - height:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(said)}</title></rect>'
            )
    return bars


def _axes(slots: int) -> list[str]:
    slot_w = PLOT_W / slots
    middle = TOP + PLOT_H / 2
    return [
        f'<line x1="{LEFT}" y1="{BASE_Y}" x2="{WIDTH - RIGHT}" y2="{BASE_Y}" '
        f'stroke="{AXIS_COLOUR}"/>',
        *(
            _text(LEFT + hour * slot_w, BASE_Y + 16, str(hour), text_anchor="middle",
                  fill=AXIS_COLOUR)
            for hour in range(0, slots + 1, HOUR_TICKS)
        ),
        _text(LEFT + PLOT_W / 2, HEIGHT - 8, "Hours after sending began", text_anchor="middle",
              fill=AXIS_COLOUR),
        _text(14, middle, "Clicks", text_anchor="middle", fill=AXIS_COLOUR,
              transform=f"rotate(-90 14 {middle:.1f})"),
    ]  # fmt: skip


def _legend() -> list[str]:
    return [
        f'<rect x="{LEFT}" y="8" width="10" height="10" fill="{HUMAN_COLOUR}"/>',
        _text(LEFT + 14, 17, "People", fill=AXIS_COLOUR),
        f'<rect x="{LEFT + 80}" y="8" width="10" height="10" fill="{MACHINE_COLOUR}"/>',
        _text(LEFT + 94, 17, "Machines (link scanners, prefetching)", fill=AXIS_COLOUR),
    ]
