"""The ``newsletter`` command as an operator uses it: clear errors, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import USER_ERRORS, app
from newsletter.models import ClickTracking, NewsletterList, Post, StoryDetail, Subscriber

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """Run like ``main()`` does: a user error becomes a message and exit status 1."""
    result = runner.invoke(app, list(args))
    if isinstance(result.exception, USER_ERRORS):
        return 1, f"{result.output}error: {result.exception}"
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_help_lists_every_command() -> None:
    code, output = run("--help")
    assert code == 0
    for command in ("db", "posts", "lists", "subscribers", "digest", "dispatch", "demo"):
        assert command in output


def test_malformed_feed_is_refused_and_writes_nothing(tmp_path: Path, session: Session) -> None:
    feed = tmp_path / "broken.xml"
    feed.write_bytes(b"<rss><channel><title>oops</title")
    code, output = run("posts", "import", str(feed))
    assert code == 1
    assert "not a readable RSS or Atom feed" in output
    assert count(session, Post) == 0


def test_missing_source_file_is_a_clear_error(tmp_path: Path) -> None:
    code, output = run("posts", "import", str(tmp_path / "nope.xml"))
    assert code == 1
    assert "no such file" in output


def test_csv_with_an_invalid_address_imports_nobody(
    tmp_path: Path, session: Session, daily_list: NewsletterList
) -> None:
    csv = tmp_path / "readers.csv"
    csv.write_text("email,name\nann@example.com,Ann\nnot-an-address,Bob\ncat@example.com,Cat\n")
    code, output = run("subscribers", "import", str(csv), "--list", "daily")
    assert code == 1
    assert "line 3" in output
    assert "nothing imported" in output
    assert count(session, Subscriber) == 0


def test_csv_import_then_json_listing(
    tmp_path: Path, session: Session, daily_list: NewsletterList
) -> None:
    csv = tmp_path / "readers.csv"
    csv.write_text("email,name\nAnn@Example.COM,Ann\nbob@example.com,Bob\n")
    code, _ = run("subscribers", "import", str(csv), "--list", "daily")
    assert code == 0
    code, output = run("subscribers", "list", "--format", "json")
    assert code == 0
    readers = json.loads(output)
    assert readers == [
        {
            "email": "Ann@example.com",
            "name": "Ann",
            "status": "active",
            "lists": {"daily": "confirmed"},
        },
        {
            "email": "bob@example.com",
            "name": "Bob",
            "status": "active",
            "lists": {"daily": "confirmed"},
        },
    ]


def test_list_name_with_line_breaks_cannot_inject_headers(session: Session) -> None:
    code, _ = run(
        "lists",
        "create",
        "evil",
        "--name",
        "Daily\r\nBcc: victim@example.com",
        "--from-address",
        "news@example.com",
    )
    assert code == 0
    nl = session.scalar(select(NewsletterList).where(NewsletterList.slug == "evil"))
    assert nl is not None
    assert "\n" not in nl.name
    assert "\r" not in nl.name
    assert "\n" not in nl.from_name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--schedule", "every morning"), "not a five-field cron expression"),
        (("--timezone", "Mars/Olympus"), "not an IANA timezone"),
        (("--from-address", "news@"), "not a valid email address"),
    ],
)
def test_list_with_bad_settings_is_refused(
    session: Session, args: tuple[str, ...], message: str
) -> None:
    base = ["lists", "create", "bad", "--name", "Bad", "--from-address", "news@example.com"]
    code, output = run(*base, *args)
    assert code == 1
    assert message in output
    assert count(session, NewsletterList) == 0


def test_a_list_is_created_with_a_story_detail(session: Session) -> None:
    code, output = run(
        "lists", "create", "deep", "--name", "Deep", "--from-address", "news@example.com",
        "--story-detail", "all_sections",
    )  # fmt: skip

    assert code == 0, output
    nl = session.scalars(select(NewsletterList)).one()
    assert nl.story_detail == StoryDetail.ALL_SECTIONS


def test_a_lists_story_detail_is_changed_and_listed(
    session: Session, daily_list: NewsletterList
) -> None:
    code, output = run("lists", "set", "daily", "--story-detail", "first_section")

    assert code == 0
    assert output == "Stories in daily now show: first_section.\n"
    _, listed = run("lists", "list", "--format", "json")
    assert json.loads(listed)[0]["story_detail"] == "first_section"


@pytest.mark.parametrize(
    ("option", "choices", "setting", "kept"),
    [
        ("--story-detail", "'dek', 'first_section', 'all_sections'", "story_detail",
         StoryDetail.DEK),
        ("--click-tracking", "'off', 'anonymous', 'individual'", "click_tracking",
         ClickTracking.ANONYMOUS),
    ],
)  # fmt: skip
def test_an_unknown_choice_is_refused_naming_the_choices(
    session: Session, daily_list: NewsletterList, option: str, choices: str, setting: str,
    kept: str,
) -> None:  # fmt: skip
    code, output = run("lists", "set", "daily", option, "everything")

    assert code == 2
    assert f"'everything' is not one of {choices}" in " ".join(output.replace("│", "").split())
    session.refresh(daily_list)
    assert getattr(daily_list, setting) == kept


def test_a_list_is_created_with_its_tracking(session: Session) -> None:
    code, output = run(
        "lists", "create", "deep", "--name", "Deep", "--from-address", "news@example.com",
        "--click-tracking", "individual", "--track-opens", "--no-utm-tags",
    )  # fmt: skip

    assert code == 0, output
    nl = session.scalars(select(NewsletterList)).one()
    assert (nl.click_tracking, nl.track_opens, nl.utm_tags) == (
        ClickTracking.INDIVIDUAL, True, False,
    )  # fmt: skip


def test_a_list_counts_clicks_anonymously_with_utm_tags_unless_told(session: Session) -> None:
    run("lists", "create", "plain", "--name", "Plain", "--from-address", "news@example.com")

    nl = session.scalars(select(NewsletterList)).one()
    assert (nl.click_tracking, nl.track_opens, nl.utm_tags) == (
        ClickTracking.ANONYMOUS, False, True,
    )  # fmt: skip


def test_a_lists_click_tracking_is_changed_with_what_it_means_and_listed(
    session: Session, daily_list: NewsletterList
) -> None:
    code, output = run("lists", "set", "daily", "--click-tracking", "individual")

    assert code == 0
    said = " ".join(output.split())
    assert "Readers who signed up before now were not told at signup" in said
    assert "Clicks in daily: individual (each reader's clicks are stored" in said
    session.refresh(daily_list)
    assert daily_list.click_tracking == ClickTracking.INDIVIDUAL
    assert daily_list.story_detail == StoryDetail.DEK
    _, listed = run("lists", "list", "--format", "json")
    row = json.loads(listed)[0]
    assert (row["click_tracking"], row["track_opens"], row["utm_tags"]) == (
        "individual", False, True,
    )  # fmt: skip
    assert row["tracking"] == "clicks individual, opens not counted, UTM tags"


def test_opens_and_utm_tags_are_switched_on_and_off(
    session: Session, daily_list: NewsletterList
) -> None:
    code, output = run("lists", "set", "daily", "--track-opens", "--no-utm-tags")

    assert code == 0
    assert output == "Opens in daily: counted.\nUTM tags in daily: off.\n"
    session.refresh(daily_list)
    assert (daily_list.click_tracking, daily_list.track_opens, daily_list.utm_tags) == (
        ClickTracking.ANONYMOUS, True, False,
    )  # fmt: skip


def test_setting_nothing_says_what_can_be_set(daily_list: NewsletterList) -> None:
    code, output = run("lists", "set", "daily")

    assert code == 1
    assert "say what to change: --story-detail, --click-tracking" in output


def test_changing_an_unknown_list_names_the_lists_there_are(daily_list: NewsletterList) -> None:
    code, output = run("lists", "set", "nope", "--story-detail", "dek")

    assert code == 1
    assert output.endswith("error: no list 'nope' (lists: daily)")


def test_digest_status_as_json(session: Session) -> None:
    code, output = run("digest", "status", "12345", "--format", "json")
    assert code == 1
    assert "no edition 12345" in output
