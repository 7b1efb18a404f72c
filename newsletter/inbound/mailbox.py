"""Reading a hosted bounce mailbox over IMAP: the seam to the mailbox provider.

:func:`poll` logs in, selects the folder and takes its messages oldest first (at most
``limit`` a poll, in batches of ``batch_size``). Each is fetched without marking it seen,
handed to ``store`` (which commits it and returns), and only then moved to the processed
folder, or deleted when there is none. A crash, a dropped connection or a failed store
leaves the message where it was; the next poll fetches it again, and because its external
id (``<user>@<host>/<folder>:<UIDVALIDITY>:<UID>``) is stored already it is moved, not
stored twice.

The URL (``NEWSLETTER_IMAP_URL``):

- ``imaps://user:password@host[:993]/Folder``: TLS from the first byte;
- ``imap://user:password@host[:143]/Folder``: STARTTLS, required: a server that does not
  offer it is not sent the password;
- ``imap://...?tls=none``: plain text, for a server on loopback or a private network.

The user and password are percent-decoded (write ``@`` as ``%40``); the folder defaults to
INBOX. The password is never logged nor put in an error.

Errors (every one a :class:`MailboxError`; what was stored stays stored)::

    MailboxError              the server said no (a missing folder, a refused command)
    ├── BadMailboxURL         NEWSLETTER_IMAP_URL cannot be read
    ├── MailboxUnreachable    no connection, no TLS, a timeout, a dropped connection
    └── LoginRefused          the server refused the user and password
"""

from __future__ import annotations

import base64
import imaplib
import logging
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

# store(raw, external_id): commits the message; its id, or None if it was stored before.
Store = Callable[[bytes, str], int | None]

TLS = Literal["implicit", "starttls", "none"]
DEFAULT_PORTS = {"implicit": 993, "starttls": 143, "none": 143}
# This many failed stores in a row end the poll: the database is down, not one message bad.
MAX_FAILURES_IN_A_ROW = 3
HEAD_BYTES = 65536  # where envelope_of looks for the header


class MailboxError(Exception):
    """The mailbox could not be polled; the message says why, without the password."""


class BadMailboxURL(MailboxError):
    """NEWSLETTER_IMAP_URL cannot be read."""


class MailboxUnreachable(MailboxError):
    """No connection, no TLS, a timeout or a dropped connection."""


class LoginRefused(MailboxError):
    """The server refused the user and password."""


@dataclass(frozen=True)
class MailboxURL:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str
    tls: TLS

    @classmethod
    def parse(cls, url: str) -> MailboxURL:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as error:
            raise BadMailboxURL(f"NEWSLETTER_IMAP_URL cannot be read: {error}") from None
        if parts.scheme not in ("imap", "imaps"):
            raise BadMailboxURL(
                "NEWSLETTER_IMAP_URL must start imaps:// (TLS) or imap:// (STARTTLS), "
                f"e.g. imaps://user:password@imap.example.com/INBOX (got {parts.scheme}://)"
            )
        if not parts.hostname or not parts.username or parts.password is None:
            raise BadMailboxURL(
                "NEWSLETTER_IMAP_URL needs a user, a password and a host: "
                "imaps://user:password@imap.example.com/INBOX"
            )
        tls: TLS = "implicit" if parts.scheme == "imaps" else "starttls"
        query = parse_qs(parts.query, keep_blank_values=True)
        if query and (query != {"tls": ["none"]} or tls == "implicit"):
            raise BadMailboxURL(
                "NEWSLETTER_IMAP_URL takes one option, ?tls=none, and only with imap:// "
                f"(got ?{parts.query})"
            )
        if query:
            tls = "none"
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_PORTS[tls],
            user=unquote(parts.username),
            password=unquote(parts.password),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            tls=tls,
        )

    @property
    def name(self) -> str:
        """The mailbox in logs, errors and external ids: no password, no port."""
        return f"{self.user}@{self.host}/{self.folder}"


@dataclass
class PollResult:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0  # stored by an earlier poll that did not get to move them
    moved: int = 0
    deleted: int = 0
    failed: int = 0  # the store raised: left in the mailbox for the next poll
    too_large: int = 0  # over inbound_max_bytes: left in the mailbox, never fetched
    left: int = 0  # over this poll's limit: for the next poll


def poll(
    url: str,
    store: Store,
    *,
    max_bytes: int,
    processed_folder: str = "",
    limit: int = 500,
    batch_size: int = 50,
    timeout: float = 30.0,
) -> PollResult:
    """Store, then move (or delete), the mailbox's messages; see the module docstring."""
    mailbox = MailboxURL.parse(url)
    if processed_folder and processed_folder == mailbox.folder:
        raise BadMailboxURL(
            f"NEWSLETTER_IMAP_PROCESSED_FOLDER is the folder polled ({mailbox.folder}): "
            "choose another folder, or leave it empty to delete stored messages"
        )
    with _connected(mailbox, timeout) as imap:
        return _Poll(imap, mailbox, store, processed_folder, max_bytes).run(limit, batch_size)


def envelope_of(raw: bytes) -> tuple[str, list[str]]:
    """The envelope a mailbox has no other record of, from the headers the delivering MTA
    wrote: the sender from Return-Path ("" for a bounce's null sender, or none), the
    recipients from Delivered-To and X-Original-To."""
    head = BytesParser(policy=compat32).parsebytes(raw[:HEAD_BYTES], headersonly=True)
    sender = parseaddr(str(head.get("Return-Path", "")))[1]
    recipients = [
        address
        for name in ("Delivered-To", "X-Original-To")
        for _, address in getaddresses([str(v) for v in head.get_all(name, [])])
        if address
    ]
    return sender, list(dict.fromkeys(recipients))


# --- One poll, on a logged-in connection -----------------------------------------------------


class _Poll:
    def __init__(
        self, imap: _Imap, mailbox: MailboxURL, store: Store, processed: str, max_bytes: int
    ) -> None:
        self.imap, self.mailbox, self.store = imap, mailbox, store
        self.processed, self.max_bytes = processed, max_bytes
        self.result = PollResult()
        self.failures_in_a_row = 0

    def run(self, limit: int, batch_size: int) -> PollResult:
        uidvalidity = self.imap.select(self.mailbox.folder)
        if self.processed:
            self.imap.ensure_folder(self.processed)
        # SMALLER compares RFC822.SIZE on the server, so an oversized message is never fetched.
        uids = self.imap.search(f"UNDELETED SMALLER {self.max_bytes + 1}")
        self.result.too_large = len(self.imap.search(f"UNDELETED LARGER {self.max_bytes}"))
        if self.result.too_large:
            log.warning(
                "%s: %s message(s) over inbound_max_bytes (%s) left in the mailbox",
                self.mailbox.name, self.result.too_large, self.max_bytes,
            )  # fmt: skip
        self.result.left = max(0, len(uids) - limit)
        uids = uids[:limit]
        for start in range(0, len(uids), batch_size):
            done = [uid for uid in uids[start : start + batch_size] if self._take(uidvalidity, uid)]
            self._clear(done)
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                log.warning("%s: %s stores failed in a row; the poll stops here",
                            self.mailbox.name, self.failures_in_a_row)  # fmt: skip
                break
        return self.result

    def _take(self, uidvalidity: int, uid: int) -> bool:
        """Fetch and store one message; whether it is stored (now or before)."""
        if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            return False
        raw = self.imap.fetch(uid)
        if raw is None:  # expunged meanwhile by another client
            return False
        if len(raw) > self.max_bytes:  # the server's size was off (line endings, say)
            self.result.too_large += 1
            return False
        self.result.fetched += 1
        external_id = f"{self.mailbox.name}:{uidvalidity}:{uid}"
        try:
            stored = self.store(raw, external_id)
        except Exception:
            self.result.failed += 1
            self.failures_in_a_row += 1
            log.exception("%s: message %s could not be stored; it stays in the mailbox",
                          self.mailbox.name, external_id)  # fmt: skip
            return False
        self.failures_in_a_row = 0
        if stored is None:
            self.result.duplicates += 1
        else:
            self.result.stored += 1
        return True

    def _clear(self, uids: list[int]) -> None:
        """Move (or delete) messages whose store returned, so committed."""
        if not uids:
            return
        if self.processed:
            self.imap.move(uids, self.processed)
            self.result.moved += len(uids)
        else:
            self.imap.delete(uids)
            self.result.deleted += len(uids)


# --- The IMAP conversation -------------------------------------------------------------------


@contextmanager
def _connected(mailbox: MailboxURL, timeout: float) -> Iterator[_Imap]:
    """A logged-in connection; every IMAP or socket error becomes a :class:`MailboxError`."""
    where = f"{mailbox.host}:{mailbox.port}"
    # The system's trusted authorities; a private CA is added with SSL_CERT_FILE.
    context = ssl.create_default_context()
    try:
        connection = _open(mailbox, timeout, context)
    except ssl.SSLError as error:
        raise MailboxUnreachable(f"TLS with {where} failed: {error}") from None
    except OSError as error:
        raise MailboxUnreachable(f"cannot reach the IMAP server {where}: {error}") from None
    except imaplib.IMAP4.error as error:
        raise MailboxUnreachable(f"{where} is not a working IMAP server: {error}") from None
    try:
        imap = _Imap(connection, mailbox.name)
        imap.login(mailbox)
        yield imap
    except imaplib.IMAP4.abort as error:
        raise MailboxUnreachable(f"{mailbox.name}: the connection dropped: {error}") from None
    except OSError as error:
        raise MailboxUnreachable(f"{mailbox.name}: the connection failed: {error}") from None
    except imaplib.IMAP4.error as error:
        raise MailboxError(f"{mailbox.name}: {error}") from None
    finally:
        with suppress(Exception):
            connection.logout()


def _open(mailbox: MailboxURL, timeout: float, context: ssl.SSLContext) -> imaplib.IMAP4:
    # The timeout is the socket's, so it bounds the connect and every read and write after.
    if mailbox.tls == "implicit":
        return imaplib.IMAP4_SSL(mailbox.host, mailbox.port, ssl_context=context, timeout=timeout)
    connection = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
    if mailbox.tls == "starttls":
        if "STARTTLS" not in connection.capabilities:
            connection.shutdown()
            raise MailboxUnreachable(
                f"{mailbox.host}:{mailbox.port} does not offer STARTTLS, so the password is "
                "not sent: use imaps://, or add ?tls=none for a server on a trusted network"
            )
        connection.starttls(context)
    return connection


class _Imap:
    """The commands a poll needs, each checked; names are quoted and encoded here."""

    def __init__(self, connection: imaplib.IMAP4, name: str) -> None:
        self.connection, self.name = connection, name
        self.capabilities: set[str] = set(connection.capabilities)

    def login(self, mailbox: MailboxURL) -> None:
        if "LOGINDISABLED" in self.capabilities:
            raise LoginRefused(
                f"{mailbox.host} refuses logins without TLS: use imaps:// or imap:// (STARTTLS)"
            )
        try:
            if "AUTH=PLAIN" in self.capabilities:  # SASL PLAIN carries a UTF-8 password
                secret = f"\0{mailbox.user}\0{mailbox.password}".encode()
                self.connection.authenticate("PLAIN", lambda _: secret)
            else:
                self.connection.login(mailbox.user, mailbox.password)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as error:
            raise LoginRefused(
                f"the IMAP server {mailbox.host} refused the login of {mailbox.user!r} "
                f"({_text(error)}): check the user and password in NEWSLETTER_IMAP_URL, with "
                "special characters percent-encoded"
            ) from None
        # What a server offers can grow after login (MOVE, UIDPLUS).
        _, data = self._ok("CAPABILITY", self.connection.capability())
        self.capabilities = set(_decode(data[-1]).upper().split())

    def select(self, folder: str) -> int:
        """Select ``folder`` for reading and writing; its UIDVALIDITY."""
        typ, data = self.connection.select(_mailbox_name(folder))
        if typ != "OK":
            raise MailboxError(f"{self.name}: no folder {folder!r} ({_decode(data[-1])})")
        _, values = self.connection.response("UIDVALIDITY")
        try:
            return int(_decode(values[0]))
        except (IndexError, TypeError, ValueError):
            raise MailboxError(f"{self.name}: the server sent no UIDVALIDITY") from None

    def ensure_folder(self, folder: str) -> None:
        name = _mailbox_name(folder)
        _, found = self._ok("LIST", self.connection.list('""', name))
        if any(item is not None for item in found):
            return
        typ, data = self.connection.create(name)
        if typ != "OK":
            raise MailboxError(
                f"{self.name}: cannot create the processed folder {folder!r} "
                f"({_decode(data[-1])}); create it, or check NEWSLETTER_IMAP_PROCESSED_FOLDER"
            )
        log.info("%s: created the folder %s for processed messages", self.name, folder)

    def search(self, criteria: str) -> list[int]:
        """UIDs matching ``criteria``, oldest first."""
        _, data = self._ok("UID SEARCH", self.connection.uid("SEARCH", criteria))
        return sorted({int(uid) for item in data if item for uid in _decode(item).split()})

    def fetch(self, uid: int) -> bytes | None:
        """The message, without setting \\Seen; None if it is gone."""
        _, data = self._ok("UID FETCH", self.connection.uid("FETCH", str(uid), "(BODY.PEEK[])"))
        for item in data:
            if isinstance(item, tuple) and b"BODY[]" in item[0].upper():
                return bytes(item[1])
        return None

    def move(self, uids: list[int], folder: str) -> None:
        uid_set, name = ",".join(map(str, uids)), _mailbox_name(folder)
        if "MOVE" in self.capabilities:
            self._ok("UID MOVE", self.connection.uid("MOVE", uid_set, name))
            return
        self._ok("UID COPY", self.connection.uid("COPY", uid_set, name))
        self.delete(uids)

    def delete(self, uids: list[int]) -> None:
        uid_set = ",".join(map(str, uids))
        self._ok("UID STORE", self.connection.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"))
        if "UIDPLUS" in self.capabilities:
            self._ok("UID EXPUNGE", self.connection.uid("EXPUNGE", uid_set))
        else:
            # Without UIDPLUS, EXPUNGE also removes what another client flagged \Deleted in
            # this folder: a bounce mailbox is ours alone, and that is what the flag asked.
            self._ok("EXPUNGE", self.connection.expunge())

    def _ok(
        self, command: str, reply: tuple[str, Sequence[object]]
    ) -> tuple[str, Sequence[object]]:
        typ, data = reply
        if typ != "OK":
            raise MailboxError(
                f"{self.name}: {command} failed: {_decode(data[-1] if data else '')}"
            )
        return typ, data


def _text(error: Exception) -> str:
    return _decode(error.args[0]) if error.args else type(error).__name__


def _decode(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _mailbox_name(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    wide: list[str] = []

    def flush() -> None:
        if wide:
            encoded = base64.b64encode("".join(wide).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            wide.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            wide.append(char)
    flush()
    encoded = "".join(out).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


__all__ = [
    "BadMailboxURL",
    "LoginRefused",
    "MailboxError",
    "MailboxURL",
    "MailboxUnreachable",
    "PollResult",
    "Store",
    "envelope_of",
    "poll",
]
