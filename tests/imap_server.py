"""A private Dovecot IMAP server for tests: a real mailbox for ``newsletter inbound poll``.

:class:`Dovecot` writes its own ``dovecot.conf`` in a temporary directory (runtime,
state, log, a passwd-file with one user and that user's Maildir all live there) and runs
``dovecot -F -c <conf>`` as a child process; ``/etc/dovecot`` is never read, so a system
Dovecot, running or not, is left alone. It listens on one free loopback port, plain IMAP
(``ssl = no``), and with ``tls=True`` on a second port for IMAPS with a self-signed
certificate for 127.0.0.1 (:attr:`Dovecot.ca_file` is that certificate, to trust it).

``capability`` replaces what the server advertises after login (``imap_capability``), so
a test can take MOVE or UIDPLUS away and watch the fallbacks on the same real server.

Run as root, mail is owned by the ``dovecot`` user (Dovecot refuses uid 0 for mail); run as
anyone else, every process of the instance runs as that user. :func:`dovecot_available`
says why it cannot run here.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from newsletter.runtime import free_port

__all__ = ["Dovecot", "dovecot_available"]

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 15.0
IMAP_TIMEOUT_S = 10.0
# Spaces and URL characters, so the URL's percent-decoding is exercised by every test.
PASSWORD = "s3cret p@ss/w%rd"


def dovecot_available() -> str | None:
    """Why a private Dovecot cannot run here, or None when it can."""
    if shutil.which("dovecot") is None:
        return "no `dovecot` command (Debian: apt-get install dovecot-imapd)"
    if os.geteuid() == 0:
        for user in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                return f"Dovecot's system user {user!r} is missing (reinstall dovecot-core)"
    if shutil.which("openssl") is None:
        return "no `openssl` command to make the test certificate"
    return None


class Dovecot:
    """Dovecot on ``127.0.0.1:<port>`` with one user, ``user``/``password``.

    Use as a context manager; :meth:`stop` also removes the instance's directory.
    """

    def __init__(
        self,
        *,
        user: str = "bounces",
        password: str = PASSWORD,
        tls: bool = False,
        capability: str | None = None,
    ) -> None:
        self.user = user
        self.password = password
        self.tls = tls
        self.capability = capability
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        # Not pytest's tmp_path (0700 under /tmp/pytest-of-root): the mail processes run as
        # the mail user and must reach the Maildir.
        self.root = Path(tempfile.mkdtemp(prefix="nl-dovecot-"))
        self.config_file = self.root / "dovecot.conf"
        self.log_file = self.root / "dovecot.log"
        self.ca_file = self.root / "cert.pem"
        self._process: subprocess.Popen[bytes] | None = None

    # -- life -------------------------------------------------------------------------------

    def __enter__(self) -> Dovecot:
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
            with (self.root / "stderr").open("wb") as stderr:
                self._process = subprocess.Popen(
                    ["dovecot", "-F", "-c", str(self.config_file)],
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the instance and remove its directory; safe to call twice."""
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()  # master takes its children with it
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
        finally:
            self._process = None
            shutil.rmtree(self.root, ignore_errors=True)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited ({self._process.returncode}):\n{self.log()}")
            try:
                with self.client():
                    return
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dovecot did not answer on {self.port}:\n{self.log()}"
                    ) from None
                time.sleep(0.05)

    def log(self) -> str:
        """What the instance logged so far, for a failing test to show."""
        parts = []
        for path in (self.log_file, self.root / "stderr"):
            try:
                parts.append(path.read_text(errors="replace"))
            except FileNotFoundError:
                continue
        return "\n".join(parts) or "(no Dovecot log yet)"

    # -- as a client --------------------------------------------------------------------------

    def url(self, folder: str = "INBOX", *, password: str | None = None) -> str:
        """A ``newsletter`` IMAP URL for this server (plain IMAP, percent-encoded)."""
        from urllib.parse import quote

        secret = quote(self.password if password is None else password, safe="")
        return (
            f"imap://{quote(self.user, safe='')}:{secret}@{LOOPBACK}:{self.port}/{folder}?tls=none"
        )

    def client(self) -> imaplib.IMAP4:
        """A logged-in IMAP connection of the test's own, to put mail in and look."""
        connection = imaplib.IMAP4(LOOPBACK, self.port, timeout=IMAP_TIMEOUT_S)
        try:
            connection.login(self.user, self.password)
        except BaseException:
            connection.shutdown()
            raise
        return connection

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver ``raw`` into ``folder`` as an MTA would (IMAP APPEND)."""
        with self.client() as connection:
            typ, data = connection.append(folder, "", None, raw)
            assert typ == "OK", data

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """The messages in ``folder`` not flagged deleted, oldest first; [] if no folder."""
        with self.client() as connection:
            typ, _ = connection.select(_quoted(folder), readonly=True)
            if typ != "OK":
                return []
            _, found = connection.uid("SEARCH", "UNDELETED")
            uids = found[0].split() if found and found[0] else []
            result: list[bytes] = []
            for uid in uids:
                _, data = connection.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                result.extend(part[1] for part in data if isinstance(part, tuple))
            return result

    # -- configuration ----------------------------------------------------------------------

    def _configure(self) -> None:
        self.root.chmod(0o755)  # the mail and login processes read below it
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
            mail_user = pwd.getpwnam("dovecot")
        else:
            mail_user = pwd.getpwuid(os.getuid())
            internal = login = mail_user.pw_name
        mail = self.root / "mail"
        mail.mkdir()
        os.chown(mail, mail_user.pw_uid, mail_user.pw_gid)
        passwd = self.root / "passwd"
        passwd.write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{mail_user.pw_uid}:{mail_user.pw_gid}::"
            f"{mail}/{self.user}::\n"
        )
        for name in ("run", "state"):
            (self.root / name).mkdir()
        listeners = (
            f"  inet_listener imap {{\n    address = {LOOPBACK}\n    port = {self.port}\n  }}\n"
        )
        tls = "ssl = no\n"
        if self.tls:
            self._make_certificate()
            listeners += (
                f"  inet_listener imaps {{\n    address = {LOOPBACK}\n    port = {self.tls_port}\n"
                "    ssl = yes\n  }\n"
            )
            tls = f"ssl = yes\nssl_cert = <{self.ca_file}\nssl_key = <{self.root / 'key.pem'}\n"
        capability = f"  imap_capability = {self.capability}\n" if self.capability else ""
        self.config_file.write_text(
            f"""\
protocols = imap
listen = {LOOPBACK}
base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
log_path = {self.log_file}
info_log_path = {self.log_file}
{tls}disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = passwd-file
  args = {passwd}
}}
service imap-login {{
  chroot =
{listeners}}}
service anvil {{
  chroot =
  # No auth penalty socket, so no penalty: after a test's wrong password, the next login
  # would otherwise wait seconds.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
{capability}}}
"""
        )

    def _make_certificate(self) -> None:
        key = self.root / "key.pem"
        argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", str(key), "-out", str(self.ca_file)]  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
        (self.root / "key.pem").chmod(0o644)


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
