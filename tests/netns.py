"""A Linux network namespace as a second machine, for tests of workers across hosts.

:func:`second_host` makes a namespace joined to this host by a veth pair (host side
``10.200.N.1/30``, namespace side ``10.200.N.2/30``). The services a test runs (PostgreSQL,
Redis, the SMTP sink) listen on loopback only, so a :class:`Forwarder` in the test process
listens on the host's veth address, on each service's own port, and relays every connection
to ``127.0.0.1``. A process started in the namespace reaches them at :attr:`Host.address`
(:meth:`Host.url` rewrites a loopback URL).

Why a forwarder rather than DNAT to 127.0.0.1: DNAT to loopback needs ``route_localnet`` on
the veth and a NAT table, and a mistake there leaks into the host's routing; the forwarder
touches nothing outside the namespace, and it tells the test when each service last carried
bytes (``Forwarder.last_active``), which is how a test catches a worker mid-send. A fault is
applied on the wire in front of it, so it looks the same as with DNAT: nft drops the
packets, silently, in both directions, so neither side is told (as in a real partition).

Faults live in an nft table of the namespace's own, ``inet newsletter_test_<name>``:
:meth:`Host.cut` drops everything on the veth, :meth:`Host.drop_port` one TCP port;
:meth:`Host.restore` deletes the table. Everything (processes, forwarder, table, namespace,
veth) is removed when the context manager exits, failure or not. Where a namespace cannot be
made (not root, no ``ip`` or ``nft``, EPERM), the test is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

__all__ = ["Forwarder", "Host", "second_host"]

LOOPBACK = "127.0.0.1"


class Forwarder:
    """Relays TCP from ``listen_host:port`` to ``127.0.0.1:port`` for each port, on one
    asyncio loop in a thread of its own."""

    def __init__(self, listen_host: str, ports: Iterable[int]) -> None:
        self.listen_host = listen_host
        self.ports = sorted(set(ports))
        # What the namespace sent to each port: when it last did, and how many bytes in all.
        self.last_active: dict[int, float] = dict.fromkeys(self.ports, 0.0)
        self.inbound: dict[int, int] = dict.fromkeys(self.ports, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="netns-forwarder", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        if not self._ready.is_set():
            raise RuntimeError("the forwarder did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def quiet_for(self, port: int) -> float:
        """Seconds since the namespace last sent a byte to ``port``."""
        return time.monotonic() - self.last_active[port]

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start(), or lost once the test runs
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        servers = [
            await asyncio.start_server(
                functools.partial(self._relay, port), self.listen_host, port,
                reuse_address=True,
            )
            for port in self.ports
        ]  # fmt: skip
        self._ready.set()
        await self._stop.wait()
        for server in servers:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for server in servers:
            await server.wait_closed()
        # Aborted, every relay sees its connections end and returns: none is cancelled (a
        # cancelled stream handler makes Python 3.11's asyncio log an error).
        relays = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if relays:
            await asyncio.wait(relays, timeout=5)

    async def _relay(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(LOOPBACK, port)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(
                    self._pipe(reader, up_writer, port), self._pipe(up_reader, writer)
                )
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, inbound: int | None = None
    ) -> None:
        """Copy until either side closes, then close the other: these protocols need no
        half-open connections. ``inbound`` is the port, when ``source`` is the namespace."""
        try:
            while data := await source.read(65536):
                if inbound is not None:
                    self.last_active[inbound] = time.monotonic()
                    self.inbound[inbound] += len(data)
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.transport.abort()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, check=True)


class Host:
    """A network namespace joined to this host by a veth pair: a second machine."""

    def __init__(self, index: int, owner: int | None = None) -> None:
        # The owner's pid in the name lets a later run remove what a killed one left.
        self.name = f"newsletter-test-{index}-{owner or os.getpid()}"
        self.host_veth, self.ns_veth = f"nlt{index}h", f"nlt{index}n"
        self.gateway = f"10.200.{index}.1"  # this host, as the namespace sees it
        self.address = f"10.200.{index}.2"
        self.table = f"newsletter_test_{index}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.forwarder: Forwarder | None = None

    def create(self) -> None:
        steps = [
            ("netns", "add", self.name),
            ("link", "add", self.host_veth, "type", "veth", "peer", "name", self.ns_veth,
             "netns", self.name),
            ("addr", "add", f"{self.gateway}/30", "dev", self.host_veth),
            ("link", "set", self.host_veth, "up"),
            ("-n", self.name, "addr", "add", f"{self.address}/30", "dev", self.ns_veth),
            ("-n", self.name, "link", "set", self.ns_veth, "up"),
            ("-n", self.name, "link", "set", "lo", "up"),
            ("-n", self.name, "route", "add", "default", "via", self.gateway),
        ]  # fmt: skip
        for step in steps:
            _ip(*step)

    def forward(self, ports: Iterable[int]) -> Forwarder:
        """Relay these loopback ports to the namespace, at ``gateway:port``."""
        self.forwarder = Forwarder(self.gateway, ports)
        self.forwarder.start()
        return self.forwarder

    def url(self, url: str) -> str:
        """A loopback service's URL as the namespace reaches it, through the forwarder."""
        parts = urlsplit(url)
        host = parts.hostname
        if host not in (LOOPBACK, "localhost"):
            raise ValueError(f"{url} is not a loopback URL")
        netloc = parts.netloc.rsplit("@", 1)
        netloc[-1] = netloc[-1].replace(host, self.gateway, 1)
        return urlunsplit(parts._replace(netloc="@".join(netloc)))

    def start(self, argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Run ``argv`` in the namespace, in a process group of its own, output to ``log``."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, *argv], env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def cut(self) -> None:
        """Drop every packet between this host and the namespace, both ways."""
        self._faults(f'iifname "{self.host_veth}" drop', f'oifname "{self.host_veth}" drop')

    def drop_port(self, port: int) -> None:
        """Drop the namespace's TCP traffic to this host's ``port`` (and its replies)."""
        self._faults(
            f'iifname "{self.host_veth}" tcp dport {port} drop',
            f'oifname "{self.host_veth}" tcp sport {port} drop',
        )

    def restore(self) -> None:
        """Lift every fault: delete the nft table."""
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)

    def _faults(self, inbound: str, outbound: str) -> None:
        self.restore()
        chain = "type filter hook {} priority -10; policy accept;"
        _nft(
            f"table inet {self.table} {{\n"
            f"  chain input {{ {chain.format('input')} {inbound}; }}\n"
            f"  chain output {{ {chain.format('output')} {outbound}; }}\n"
            "}\n"
        )

    def remove(self) -> None:
        """Undo everything, whatever state a failed test left it in."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        for pid in _ip("netns", "pids", self.name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        if self.forwarder is not None:
            self.forwarder.stop()
        self.restore()
        _ip("netns", "del", self.name, check=False)  # takes its end of the veth, and so both
        _ip("link", "del", self.host_veth, check=False)


def _remove_leftovers() -> None:
    """Remove the namespaces of runs that were killed before they could clean up."""
    for line in _ip("netns", "list").stdout.splitlines():
        found = re.match(r"newsletter-test-(\d+)-(\d+)\b", line)
        if found and not Path(f"/proc/{found[2]}").exists():
            Host(int(found[1]), int(found[2])).remove()


def _free_index() -> int:
    """A 10.200.N.0/30 that no namespace or link of another run holds."""
    namespaces = _ip("netns", "list").stdout
    for index in range(1 + os.getpid() % 200, 255):
        if (
            f"newsletter-test-{index}-" not in namespaces
            and not Path(f"/sys/class/net/nlt{index}h").exists()
        ):
            return index
    raise RuntimeError("no free 10.200.N.0/30 for a test namespace")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command (Debian: apt-get install iproute2 nftables)"
    return None


@contextlib.contextmanager
def second_host(ports: Iterable[int]) -> Iterator[Host]:
    """A namespace standing in for a second machine, with ``ports`` of this host's loopback
    forwarded to it; skips the test where namespaces cannot be made."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    _remove_leftovers()
    host = Host(_free_index())
    try:
        try:
            host.create()
            subprocess.run(["nft", "list", "tables"], capture_output=True, check=True)
        except subprocess.CalledProcessError as error:
            pytest.skip(f"cannot make a network namespace: {' '.join(error.cmd)}: "
                        f"{(error.stderr or '').strip()}")  # fmt: skip
        host.forward(ports)
        yield host
    finally:
        host.remove()
