"""deploy/systemd/ as systemd reads it: `systemd-analyze verify` finds nothing to say about
any unit, each service's hardening stays scored "OK" by `systemd-analyze security`, and each
ExecStart is a command the CLI takes.

`verify` wants every ExecStart binary to exist, so it reads copies whose ExecStart names this
checkout's `newsletter` instead of /opt/newsletter's; nothing else in them changes. It exits
0 after warnings such as an unknown key or a value it cannot parse ("ignoring"), so any line
it prints about our units fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_files import (
    INSTALLED,
    ROOT,
    cli_refusal,
    exec_start,
    missing_command,
    services,
    unit_files,
    unit_setting,
)
from tests.required_tools import require_tool

# systemd-analyze security's exposure, in tenths: the units score 1.5 of 10 on Debian 12's
# systemd 252; 2.0 leaves room for another version's weights, well inside "OK" (< 5).
MAX_EXPOSURE = 20
# What every service keeps, whatever the score: a read-only system but its state directory,
# no privileges to gain, and the settings file it was configured with.
EVERY_SERVICE = {
    "User": "newsletter",
    "EnvironmentFile": "/etc/newsletter/newsletter.env",
    "WorkingDirectory": "/var/lib/newsletter",
    "StateDirectory": "newsletter",
    "Restart": "on-failure",
    "PartOf": "newsletter.target",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
}
CHECKOUT_NEWSLETTER = Path(sys.executable).with_name("newsletter")


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    require_tool(
        None if path else "systemd-analyze is not installed (Debian package systemd)",
        variable="NEWSLETTER_REQUIRE_SYSTEMD",
    )
    assert path is not None
    return path


@pytest.fixture(scope="module")
def verifiable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the units with this checkout's `newsletter`, and an instance of each
    template unit (worker@1) beside the template."""
    folder = tmp_path_factory.mktemp("units")
    for unit in unit_files():
        text = unit.read_text(encoding="utf-8").replace(INSTALLED, str(CHECKOUT_NEWSLETTER))
        (folder / unit.name).write_text(text, encoding="utf-8")
        if unit.name.endswith("@.service"):
            (folder / unit.name.replace("@.", "@1.")).write_text(text, encoding="utf-8")
    return folder


def _complaints(output: str, folder: Path) -> list[str]:
    """The lines of systemd-analyze's output about our units (not the host's own)."""
    return [line for line in output.splitlines() if "newsletter" in line or str(folder) in line]


@pytest.mark.parametrize("unit", unit_files(), ids=lambda unit: unit.name)
def test_systemd_analyze_verify_finds_nothing_to_say(unit: Path, verifiable: Path) -> None:
    names = [unit.name]
    if unit.name.endswith("@.service"):
        names.append(unit.name.replace("@.", "@1."))
    verified = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", *(str(verifiable / name) for name in names)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    output = verified.stdout + verified.stderr
    assert verified.returncode == 0, output
    assert _complaints(output, verifiable) == []


@pytest.mark.parametrize("unit", services(), ids=lambda unit: unit.name)
def test_every_service_stays_hardened(unit: Path, verifiable: Path) -> None:
    name = unit.name.replace("@.", "@1.")
    scored = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", f"--threshold={MAX_EXPOSURE}",
         "--no-pager", str(verifiable / name)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert scored.returncode == 0, scored.stdout + scored.stderr


@pytest.mark.parametrize("unit", services(), ids=lambda unit: unit.name)
def test_every_service_runs_the_installed_command_hardened(unit: Path) -> None:
    assert exec_start(unit)[0] == INSTALLED
    assert {key: unit_setting(unit, key) for key in EVERY_SERVICE} == {
        key: [value] for key, value in EVERY_SERVICE.items()
    }


@pytest.mark.parametrize("unit", services(), ids=lambda unit: unit.name)
def test_every_exec_start_is_a_command_the_cli_takes(unit: Path) -> None:
    args = exec_start(unit)[1:]
    if missing_command(args):
        pytest.skip(f"`newsletter {args[0]}` is not a command yet (issue 14, item 5)")
    assert cli_refusal(args) is None


def _seconds(timespan: str) -> float:
    """A systemd time span of one unit, as the units write them: 30s, 11min."""
    for suffix, factor in (("min", 60), ("s", 1)):
        if timespan.endswith(suffix):
            return float(timespan.removesuffix(suffix)) * factor
    raise ValueError(f"not a time span this test reads: {timespan!r}")


def test_a_stopped_worker_finishes_its_batch_before_systemd_kills_it() -> None:
    """Warm shutdown: SIGTERM to Celery's main process only (a pool process would die of it
    mid-batch), and more time than the deliver task's hard time limit before the SIGKILL."""
    [worker] = [unit for unit in services() if unit.name == "newsletter-worker@.service"]
    assert unit_setting(worker, "KillMode") == ["mixed"]
    assert unit_setting(worker, "KillSignal") == ["SIGTERM"]
    [timeout] = unit_setting(worker, "TimeoutStopSec")
    assert _seconds(timeout) > _deliver_time_limit()


def _deliver_time_limit() -> float:
    """workers.tasks.DELIVER_TIME_LIMIT_S, read from its source: importing ``workers`` builds
    its Celery app from this process's settings, which other tests set for their broker."""
    source = (ROOT / "workers" / "tasks.py").read_text(encoding="utf-8")
    [line] = [line for line in source.splitlines() if line.startswith("DELIVER_TIME_LIMIT_S =")]
    return float(line.split("=")[1])
