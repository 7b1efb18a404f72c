"""The clicks chart: an SVG a screen reader can describe, with every text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from newsletter.analytics.chart import clicks_chart, describe, nice_ceiling
from newsletter.analytics.report import HourClicks

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """The chart as XML: well formed, or this fails. (The text is our own drawing.)"""
    return ET.fromstring(svg)  # noqa: S314


def hours(**counts: tuple[int, int]) -> list[HourClicks]:
    """48 hours, zero but for ``h<n>=(human, machine)``."""
    given = {int(name[1:]): pair for name, pair in counts.items()}
    return [HourClicks(h, *given.get(h, (0, 0))) for h in range(48)]


def test_the_chart_is_an_image_named_by_its_title_and_description() -> None:
    svg = parse(clicks_chart(hours(h0=(12, 30), h3=(5, 0)), title="Clicks, Monday"))

    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "clicks-title clicks-desc"
    assert svg.find(f"{SVG}title").text == "Clicks, Monday"
    assert svg.find(f"{SVG}desc").text == (
        "17 human and 30 machine clicks in the first 48 hours after sending began. "
        "Human clicks peaked at 12 in hour 1."
    )


def test_each_hour_with_clicks_has_a_bar_for_people_and_one_for_machines() -> None:
    svg = parse(clicks_chart(hours(h0=(12, 30), h3=(5, 0)), title="Clicks"))

    bars = [
        rect.find(f"{SVG}title").text
        for rect in svg.iter(f"{SVG}rect")
        if rect.find(f"{SVG}title") is not None
    ]

    assert bars == [
        "Hour 1: 12 human clicks",
        "Hour 1: 30 machine clicks",
        "Hour 4: 5 human clicks",
    ]


def test_the_axes_are_labelled_in_words_and_round_numbers() -> None:
    svg = parse(clicks_chart(hours(h0=(1234, 0)), title="Clicks"))

    texts = [t.text for t in svg.iter(f"{SVG}text")]

    assert "Hours after sending began" in texts
    assert "Clicks" in texts
    assert {"0", "1,000", "2,000"} <= set(texts)  # the y axis, 0 to a round 2,000
    assert {"0", "6", "12", "24", "48"} <= set(texts)  # the x axis every six hours


def test_text_in_the_chart_is_escaped() -> None:
    drawn = clicks_chart(hours(), title='<script>alert("x")</script> & co', id_prefix='a"b')

    assert "<script>" not in drawn
    assert "&lt;script&gt;" in drawn
    assert "&amp; co" in drawn
    assert parse(drawn).find(f"{SVG}title").text == '<script>alert("x")</script> & co'


def test_an_edition_nobody_clicked_says_so() -> None:
    assert describe(hours()) == "No clicks in the first 48 hours after sending began."
    parse(clicks_chart(hours(), title="Clicks"))  # still a well-formed image


def test_the_scale_rounds_up_to_one_two_or_five() -> None:
    assert [nice_ceiling(n) for n in (1, 2, 3, 7, 12, 51, 1234)] == [1, 2, 5, 10, 20, 100, 2000]
