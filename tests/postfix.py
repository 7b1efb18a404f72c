"""A private Postfix instance for tests: a real MTA that turns mail for a dead domain into a
real DSN and routes it to the inbound server under test.

:class:`Postfix` writes its own ``main.cf`` and ``master.cf`` (``postconf -c DIR -e`` and
``-M``) in a temporary directory, with its own queue, data directory and log file, and runs
``postfix -c DIR start``. Nothing under ``/etc/postfix`` or ``/var/spool/postfix`` is written
and the system's main.cf is not used, so a system Postfix, running or not, is left alone. The
instance listens on one free loopback port (never 25) and does no DNS.

Mail for ``nobody@<dead_domain>`` is accepted at RCPT and then bounced by Postfix's own
``virtual`` delivery agent (``5.1.1 unknown user``), which sends a DSN to the envelope sender;
with ``refuse_unknown=True`` it is refused at RCPT instead (``550 5.1.1``), as most receiving
MTAs do. Mail for ``<bounce_domain>`` goes by ``transport_maps`` to the inbound server, over
SMTP or, with ``lmtp=True``, LMTP. Every other domain is bounced at once (``error``), so a
stray address cannot start DNS lookups or retries.

Needs root (Postfix's master runs as root and its daemons as ``mail_owner``), Postfix 3.4 or
later (``maillog_file``) and the ``postfix`` user; :func:`postfix_available` says why not.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from newsletter.runtime import free_port

__all__ = ["Postfix", "postfix_available"]

LOOPBACK = "127.0.0.1"
MIN_VERSION = (3, 4)  # maillog_file and the postlog service
COMMAND_TIMEOUT_S = 30.0


def _version() -> tuple[int, ...]:
    # -d: the compiled-in value, so a package installed with "No configuration" (no
    # /etc/postfix/main.cf) still answers.
    out = subprocess.run(
        ["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True, check=True
    ).stdout
    return tuple(int(part) for part in out.strip().split(".")[:2])


def postfix_available() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    for tool in ("postfix", "postconf", "postqueue"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command (Debian: apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError as error:
        return f"Postfix's user or group is missing: {error}"
    try:
        version = _version()
    except (subprocess.CalledProcessError, ValueError) as error:
        return f"cannot read Postfix's version: {error}"
    if version < MIN_VERSION:
        return f"Postfix {'.'.join(map(str, version))} has no maillog_file (needs 3.4)"
    return None


class Postfix:
    """A private Postfix on ``127.0.0.1:<smtp_port>`` bouncing ``<dead_domain>`` and routing
    ``<bounce_domain>`` to the inbound server at ``inbound_host:inbound_port``.

    Use as a context manager (``with Postfix(host, port) as mta:``) or call :meth:`start` and
    :meth:`stop`; :meth:`stop` also removes the instance's directory.
    """

    def __init__(
        self,
        inbound_host: str,
        inbound_port: int,
        *,
        lmtp: bool = False,
        refuse_unknown: bool = False,
        dead_domain: str = "dead.test",
        bounce_domain: str = "bounces.test",
    ) -> None:
        self.inbound_host = inbound_host
        self.inbound_port = inbound_port
        self.lmtp = lmtp
        self.refuse_unknown = refuse_unknown
        self.dead_domain = dead_domain
        self.bounce_domain = bounce_domain
        self.myhostname = "mta.postfix.test"
        self.smtp_port = free_port()
        # Not pytest's tmp_path: Postfix's sockets live under the queue directory and a unix
        # socket path has to fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="nl-postfix-"))
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "queue"
        self.data_dir = self.root / "data"
        self.log_file = self.root / "maillog"
        self.transport_file = self.config_dir / "transport"
        self.mailboxes_file = self.config_dir / "mailboxes"

    @property
    def transport(self) -> str:
        """The ``transport_maps`` entry for the bounce domain, as an operator writes it."""
        if self.lmtp:
            return f"lmtp:inet:{self.inbound_host}:{self.inbound_port}"
        return f"smtp:[{self.inbound_host}]:{self.inbound_port}"

    @property
    def url(self) -> str:
        """Where the pipeline sends: this MTA's SMTP port."""
        return f"smtp://{LOOPBACK}:{self.smtp_port}"

    # -- life -------------------------------------------------------------------------------

    def __enter__(self) -> Postfix:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._configure()
            self._postfix("start")  # creates the queue directories, checks, starts master
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the instance and remove its directory; safe to call twice."""
        try:
            if self.is_running():
                self._stop_master()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _stop_master(self) -> None:
        # abort and stop both SIGTERM master, which takes its children with it; stop then
        # polls in whole seconds. A test MTA's queue is disposable, so abort and poll here.
        self._postfix("abort", check=False)
        deadline = time.monotonic() + 10
        while self.is_running():
            if time.monotonic() > deadline:
                pid = int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
                os.killpg(pid, signal.SIGKILL)  # what `postfix stop` falls back to
                return
            time.sleep(0.05)

    def is_running(self) -> bool:
        if not (self.queue_dir / "pid" / "master.pid").exists():
            return False
        return self._postfix("status", check=False).returncode == 0

    # -- the queue and the log --------------------------------------------------------------

    def queue(self) -> list[dict[str, Any]]:
        """The messages in the queue, one dict each as ``postqueue -j`` prints them."""
        out = self._run(["postqueue", "-c", str(self.config_dir), "-j"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_until_queue_empty(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while queue := self.queue():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Postfix queue not empty after {timeout}s: {queue}\n{self.log()}"
                )
            time.sleep(0.1)

    def log(self) -> str:
        """Everything the instance logged so far, for a failing test to show."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no Postfix log yet)"

    # -- configuration ----------------------------------------------------------------------

    def _configure(self) -> None:
        self.config_dir.mkdir(parents=True)
        self.queue_dir.mkdir()  # root-owned like /var/spool/postfix; `start` fills it in
        self.data_dir.mkdir()
        (self.root / "mail").mkdir()
        owner = pwd.getpwnam("postfix")
        # master runs as root but takes its lock in data_directory after dropping to mail_owner.
        os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        os.chown(self.root / "mail", owner.pw_uid, owner.pw_gid)
        # Postfix daemons drop to mail_owner; mkdtemp's 0700 would keep them out of the tree.
        self.root.chmod(0o755)
        (self.config_dir / "main.cf").write_text("")
        (self.config_dir / "master.cf").write_text("")
        self.transport_file.write_text(f"{self.bounce_domain}  {self.transport}\n")
        self.mailboxes_file.write_text("")
        self._run(["postconf", "-c", str(self.config_dir), "-e", *self._main_cf()])
        self._run(["postconf", "-c", str(self.config_dir), "-M", *self._master_cf()])
        # Postfix sleeps (300 ms at a time, up to ~2 s) before it reads a main.cf or a texthash
        # table younger than a couple of seconds, in case an editor is still writing it: every
        # command and each daemon's first lookup would wait. Ours are complete, so age them.
        settled = time.time() - 10
        for path in self.config_dir.iterdir():
            os.utime(path, (settled, settled))

    def _main_cf(self) -> list[str]:
        owner = pwd.getpwnam("postfix")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "myhostname": self.myhostname,
            "mydomain": "postfix.test",
            "myorigin": "$myhostname",
            # Nothing is local: no aliases, no local(8), no /etc/aliases to read.
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            # The dead domain: a virtual mailbox domain with no mailboxes. Accepted at RCPT
            # (unless refuse_unknown), then virtual(8) finds no user and Postfix bounces it.
            # An empty table, not an empty setting: with no virtual_mailbox_maps at all smtpd
            # takes every address as valid and refuse_unknown would refuse nothing.
            "virtual_mailbox_domains": self.dead_domain,
            "virtual_mailbox_maps": f"texthash:{self.mailboxes_file}",
            "virtual_mailbox_base": str(self.root / "mail"),
            "virtual_uid_maps": f"static:{owner.pw_uid}",
            "virtual_gid_maps": f"static:{owner.pw_gid}",
            "smtpd_reject_unlisted_recipient": "yes" if self.refuse_unknown else "no",
            # The bounce domain, routed as an operator would route it to the inbound server.
            "relay_domains": self.bounce_domain,
            "transport_maps": f"texthash:{self.transport_file}",
            "recipient_delimiter": "+",
            # Anything else fails at once rather than looking up MX records.
            "default_transport": "error:5.4.4 this test MTA delivers nowhere else",
            "smtp_dns_support_level": "disabled",
            "lmtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            # Seconds, not minutes: a deferred DSN (inbound server not up yet) is retried soon,
            # and nothing lingers in the queue past a test.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "maximal_queue_lifetime": "1m",
            "bounce_queue_lifetime": "1m",
            "smtp_connect_timeout": "5s",
            "lmtp_connect_timeout": "5s",
            "smtpd_error_sleep_time": "0",
            "in_flow_delay": "0",
            "biff": "no",
            # No postmaster notices: they would go to an address nothing here delivers to, and
            # sit in the queue that wait_until_queue_empty waits on.
            "notify_classes": "",
            "maillog_file": str(self.log_file),
            # The default prefixes (/var, /dev/stdout) would refuse a log under /tmp.
            "maillog_file_prefixes": str(self.root),
            "syslog_name": "postfix-test",
        }
        return [f"{name}={value}" for name, value in settings.items()]

    def _master_cf(self) -> list[str]:
        # chroot n everywhere: a chroot jail would be the private queue directory, which has
        # none of the files (resolv.conf, libraries) a jailed daemon expects to find there.
        return [
            f"{LOOPBACK}:{self.smtp_port}/inet = {LOOPBACK}:{self.smtp_port} inet n - n - - smtpd",
            "cleanup/unix = cleanup unix n - n - 0 cleanup",
            "qmgr/unix = qmgr unix n - n 300 1 qmgr",
            "rewrite/unix = rewrite unix - - n - - trivial-rewrite",
            "bounce/unix = bounce unix - - n - 0 bounce",
            "defer/unix = defer unix - - n - 0 bounce",
            "trace/unix = trace unix - - n - 0 bounce",
            "flush/unix = flush unix n - n 1000? 0 flush",
            "proxymap/unix = proxymap unix - - n - - proxymap",
            "smtp/unix = smtp unix - - n - - smtp",
            "relay/unix = relay unix - - n - - smtp",
            "showq/unix = showq unix n - n - - showq",
            "error/unix = error unix - - n - - error",
            "retry/unix = retry unix - - n - - error",
            "discard/unix = discard unix - - n - - discard",
            "virtual/unix = virtual unix - n n - - virtual",
            "lmtp/unix = lmtp unix - - n - - lmtp",
            "anvil/unix = anvil unix - - n - 1 anvil",
            "scache/unix = scache unix - - n - 1 scache",
            "postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd",
        ]

    # -- commands ---------------------------------------------------------------------------

    def _postfix(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(["postfix", "-c", str(self.config_dir), command], check=check)

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{self.log()}"
            )
        return result
