"""Importing readers from CSV: every row checked before anything is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import NewsletterList, Subscriber, Subscription, SubscriptionStatus
from newsletter.subscriptions.service import Signup, import_subscribers, parse_subscriber_csv


def test_header_with_email_and_name() -> None:
    signups, errors = parse_subscriber_csv("email,name\nann@example.com,Ann\nbob@example.com,Bob\n")
    assert errors == []
    assert signups == [Signup("ann@example.com", "Ann"), Signup("bob@example.com", "Bob")]


def test_header_in_another_order_and_case() -> None:
    signups, errors = parse_subscriber_csv(" Name , EMAIL \nAnn Smith , Ann@Example.COM \n")
    assert errors == []
    assert signups == [Signup("Ann@example.com", "Ann Smith")]


def test_header_with_email_only() -> None:
    signups, errors = parse_subscriber_csv("email\nann@example.com\n")
    assert (signups, errors) == ([Signup("ann@example.com", "")], [])


def test_extra_columns_are_ignored() -> None:
    signups, _ = parse_subscriber_csv("id,email,name,city\n1,ann@example.com,Ann,Paris\n")
    assert signups == [Signup("ann@example.com", "Ann")]


def test_quoted_name_with_a_comma() -> None:
    signups, _ = parse_subscriber_csv('email,name\nann@example.com,"Smith, Ann"\n')
    assert signups == [Signup("ann@example.com", "Smith, Ann")]


def test_bare_list_of_addresses() -> None:
    signups, errors = parse_subscriber_csv("ann@example.com\nbob@example.com\n")
    assert errors == []
    assert [s.email for s in signups] == ["ann@example.com", "bob@example.com"]


def test_bare_list_with_names_in_the_second_column() -> None:
    signups, _ = parse_subscriber_csv("ann@example.com,Ann\nbob@example.com,Bob\n")
    assert signups == [Signup("ann@example.com", "Ann"), Signup("bob@example.com", "Bob")]


def test_windows_line_endings() -> None:
    signups, errors = parse_subscriber_csv("email,name\r\nann@example.com,Ann\r\n")
    assert (signups, errors) == ([Signup("ann@example.com", "Ann")], [])


def test_invalid_address_is_reported_with_its_line_number() -> None:
    _, errors = parse_subscriber_csv("email,name\nann@example.com,Ann\nnot-an-address,Bob\n")
    [error] = errors
    assert error.startswith("line 3: ")
    assert "'not-an-address' is not a valid email address" in error


def test_invalid_address_in_a_bare_list_is_reported_with_its_line_number() -> None:
    _, errors = parse_subscriber_csv("ann@example.com\nbob@\n")
    assert [e.split(":")[0] for e in errors] == ["line 2"]


def test_every_invalid_row_is_reported() -> None:
    _, errors = parse_subscriber_csv("email\nbad-1\nann@example.com\nbad-2\n")
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 4"]


def test_row_with_a_line_break_in_the_address_is_reported() -> None:
    _, errors = parse_subscriber_csv('email\n"ann@example.com\nBcc: x@example.com"\n')
    assert len(errors) == 1
    assert "line breaks" in errors[0]


def test_row_missing_the_email_cell_is_reported() -> None:
    _, errors = parse_subscriber_csv("name,email\nAnn\n")
    [error] = errors
    assert error.startswith("line 2: ")


def test_a_header_without_an_email_column_names_the_columns_it_has() -> None:
    assert parse_subscriber_csv("Mail,Name\nann@example.com,Ann\n") == (
        [],
        ["the CSV has no 'email' column; its columns are: Mail, Name"],
    )


def test_line_numbers_count_blank_lines() -> None:
    _, errors = parse_subscriber_csv("email,name\n\nann@example.com,Ann\n\nnot-an-address,Bob\n")
    assert [e.split(":")[0] for e in errors] == ["line 5"]


def test_empty_file_is_an_error() -> None:
    assert parse_subscriber_csv("") == ([], ["the file holds no addresses"])


def test_file_of_blank_lines_is_an_error() -> None:
    assert parse_subscriber_csv("\n , \n\n") == ([], ["the file holds no addresses"])


def test_errors_come_back_apart_from_the_valid_rows() -> None:
    # The caller sees every problem and can refuse the whole file before writing anything.
    signups, errors = parse_subscriber_csv("email\nann@example.com\nbroken@\n")
    assert signups == [Signup("ann@example.com", "")]
    assert len(errors) == 1
    assert errors[0].startswith("line 3: 'broken@' is not a valid email address")


def test_parsing_writes_nothing(session: Session) -> None:
    parse_subscriber_csv("email\nann@example.com\nbroken@\n")
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_imported_readers_are_confirmed(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    signups, _ = parse_subscriber_csv("email,name\nann@example.com,Ann\n")
    report = import_subscribers(session, daily_list, signups, now=now, source="import")
    assert (report.added, report.already) == (1, 0)
    subscription = session.scalar(select(Subscription))
    assert subscription is not None
    assert subscription.status == SubscriptionStatus.CONFIRMED
    assert subscription.confirmed_at == now


def test_importing_the_same_readers_again_adds_no_one(
    session: Session, daily_list: NewsletterList, now: datetime
) -> None:
    signups, _ = parse_subscriber_csv("ann@example.com\nbob@example.com\n")
    import_subscribers(session, daily_list, signups, now=now, source="import")
    again, _ = parse_subscriber_csv("ANN@EXAMPLE.COM\nbob@Example.com\n")
    report = import_subscribers(session, daily_list, again, now=now, source="import")
    assert (report.added, report.already) == (0, 2)
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 2
