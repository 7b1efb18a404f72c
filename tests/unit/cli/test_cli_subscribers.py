"""``newsletter subscribers`` as an operator uses it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import NewsletterList, Subscriber
from tests.cli_runner import run


def test_a_csv_without_an_email_column_names_the_column_and_imports_nobody(
    tmp_path: Path, session: Session, daily_list: NewsletterList
) -> None:
    csv = tmp_path / "readers.csv"
    csv.write_text("mail,name\nann@example.com,Ann\nbob@example.com,Bob\n")

    code, output = run("subscribers", "import", str(csv), "--list", "daily")

    assert code == 1
    assert f"{csv} the CSV has no 'email' column; its columns are: mail, name\n" in output
    assert "is not a valid email address" not in output
    assert output.endswith("error: nothing imported: fix the 1 problem(s) above and run again")
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
