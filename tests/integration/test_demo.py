"""The quick start's first command: ``newsletter demo`` in an empty folder."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from pathlib import Path

from newsletter.cli.demo import DEMO_READERS
from tests.cli_runner import newcomer_env


def test_demo_delivers_one_digest_per_sample_reader(tmp_path: Path) -> None:
    env = newcomer_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "demo"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Delivered" in result.stdout
    box = mailbox.Maildir(tmp_path / "var" / "outbox", create=False)
    recipients = sorted(message["To"] for message in box)
    assert recipients == sorted(reader.email for reader in DEMO_READERS)
    subjects = {message["Subject"] for message in box}
    assert len(subjects) == 1
    assert (tmp_path / "var" / "newsletter.db").exists()
    assert list((tmp_path / "var" / "preview").glob("edition-*.html"))
