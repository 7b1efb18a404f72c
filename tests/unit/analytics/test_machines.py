"""Machine clicks, judged on recorded-style sequences: what mail gateways and link scanners do
to a message, and what readers do."""

from __future__ import annotations

import random

from newsletter.analytics.machines import (
    Click,
    Rules,
    apple_proxy,
    burst_size,
    classify,
    scanner_agent,
)

RULES = Rules(machine_seconds=30, burst_seconds=20, burst_share=0.5)
SENT = 1_747_380_600.0  # 2025-05-16 07:30 UTC
LINKS = 10


def clicks(*moments: tuple[float, int], **flags: bool) -> list[Click]:
    """(seconds after delivery, link number) pairs, as one message's events."""
    return [
        Click(kind="c", edition_id=1, number=n, ref="a1", sent_at=SENT, at=SENT + t, **flags)
        for t, n in moments
    ]


def test_a_gateway_fetching_every_link_at_once_is_a_machine() -> None:
    # Safe Links style: every link, within two seconds, a minute after delivery.
    sequence = clicks(*((60 + i * 0.2, i) for i in range(1, LINKS + 1)))

    assert set(classify(sequence, links_in_edition=LINKS, rules=RULES)) == {"burst"}


def test_a_burst_of_half_the_links_is_a_machine() -> None:
    sequence = clicks(*((3600 + i, i) for i in range(1, 6)))

    assert set(classify(sequence, links_in_edition=LINKS, rules=RULES)) == {"burst"}


def test_a_click_seconds_after_delivery_is_a_machine() -> None:
    assert classify(clicks((4, 3)), links_in_edition=LINKS, rules=RULES) == ["too-soon"]


def test_a_head_request_is_a_machine() -> None:
    sequence = clicks((7200, 3), head=True)

    assert classify(sequence, links_in_edition=LINKS, rules=RULES) == ["head"]


def test_a_scanner_user_agent_is_a_machine() -> None:
    sequence = clicks((7200, 3), scanner=True)

    assert classify(sequence, links_in_edition=LINKS, rules=RULES) == ["scanner"]


def test_a_reader_clicking_two_stories_over_a_minute_is_a_person() -> None:
    sequence = clicks((900, 1), (960, 4))

    assert classify(sequence, links_in_edition=LINKS, rules=RULES) == ["", ""]


def test_a_reader_opening_three_stories_in_tabs_is_a_person() -> None:
    # Quick, but a few links, not most of the message's.
    sequence = clicks((1800, 1), (1803, 2), (1806, 5))

    assert classify(sequence, links_in_edition=LINKS, rules=RULES) == ["", "", ""]


def test_a_gateway_burst_then_the_readers_own_click_later_counts_the_reader() -> None:
    burst = [(45 + i * 0.1, i) for i in range(1, LINKS + 1)]
    sequence = clicks(*burst, (5400, 2))

    reasons = classify(sequence, links_in_edition=LINKS, rules=RULES)

    assert reasons[:-1] == ["burst"] * LINKS
    assert reasons[-1] == ""


def test_the_same_link_fetched_again_and_again_is_no_burst() -> None:
    # A reader coming back to one story: distinct links make a burst, not repeats.
    sequence = clicks((600, 1), (605, 1), (610, 1), (615, 1), (620, 1), (625, 1))

    assert set(classify(sequence, links_in_edition=LINKS, rules=RULES)) == {""}


def test_an_edition_of_one_story_never_bursts() -> None:
    assert classify(clicks((600, 1), (601, 1)), links_in_edition=1, rules=RULES) == ["", ""]


def test_scanner_agents_are_known_and_browsers_are_not() -> None:
    scanners = [
        "",
        "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))",
        "Mimecast-Link-Scanner",
        "Proofpoint URL Defense",
        "python-requests/2.31.0",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.5)",
    ]
    browsers = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    ]

    assert [scanner_agent(a) for a in scanners] == [True] * len(scanners)
    assert [scanner_agent(a) for a in browsers] == [False] * len(browsers)


def test_apple_mail_privacy_protection_opens_are_recognised() -> None:
    assert apple_proxy("Mozilla/5.0", "203.0.113.9")
    assert apple_proxy("Mozilla/5.0 (Macintosh) AppleWebKit", "17.58.1.2")
    assert not apple_proxy(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit", "203.0.113.9"
    )


def test_an_event_survives_the_buffer_and_junk_does_not_pass_for_one() -> None:
    click = Click(kind="c", edition_id=7, number=3, ref="aXyZ", sent_at=SENT, at=SENT + 99.5,
                  head=True, scanner=False)  # fmt: skip

    assert Click.decode(click.encode()) == click
    assert [Click.decode(line) for line in ("", "c|x|1|a|0|0|", "z|1|1|a|0|0|", "c|1|1")] == [
        None
    ] * 4


def reference_bursts(message: list[Click], needed: int, seconds: float) -> set[int]:
    """Every click in some window of ``seconds`` holding ``needed`` different links: the rule
    as written, checked window by window."""
    marked: set[int] = set()
    for end in range(len(message)):
        window = [i for i in range(end + 1) if message[end].at - message[i].at <= seconds]
        if len({message[i].number for i in window}) >= needed:
            marked.update(window)
    return marked


def test_the_burst_rule_marks_exactly_the_clicks_of_a_burst_window() -> None:
    rng = random.Random(15)
    for _ in range(300):
        moments = sorted(rng.uniform(0, 120) for _ in range(rng.randint(1, 25)))
        sequence = clicks(*((3600 + t, rng.randint(1, 6)) for t in moments))

        reasons = classify(sequence, links_in_edition=LINKS, rules=RULES)

        expected = reference_bursts(
            sequence, burst_size(LINKS, RULES.burst_share), RULES.burst_seconds
        )
        assert {i for i, r in enumerate(reasons) if r == "burst"} == expected
