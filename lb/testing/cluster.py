"""A cluster of real ``python -m lb serve`` processes on one real nats-server, for tests and tools.

Each server has its own data dir and gRPC port; all share one NATS server and namespace. The
helpers wait on conditions (health, log lines, metadata) with timeouts; nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lb.testing.lb_process import LbProcess, new_lb_process
from lb.testing.nats_server import NatsServer, start_nats_server

T = TypeVar("T")

_LEADER_RE = re.compile(r"metadata leader is now (\S+)")


def wait_until(
    predicate: Callable[[], T], timeout_s: float = 20.0, interval_s: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what or predicate}")


async def _call(port: int, method: str, request: Any, timeout_s: float) -> Any:
    from grpclib.client import Channel

    from lb._proto.proto import ApiStub

    channel = Channel("127.0.0.1", port)
    try:
        return await getattr(ApiStub(channel), method)(request, timeout=timeout_s)
    finally:
        channel.close()


def call(port: int, method: str, request: Any, timeout_s: float = 10.0) -> Any:
    """One unary call of the lb API on 127.0.0.1:port (a fresh channel each time)."""
    return asyncio.run(_call(port, method, request, timeout_s))


@dataclass
class Cluster:
    """Servers by name, the shared NATS server and where everything lives."""

    base_dir: Path
    nats: NatsServer
    namespace: str = "lbtest"
    servers: dict[str, LbProcess] = field(default_factory=dict)

    def add(
        self,
        name: str,
        args: Sequence[str] = (),
        config: dict[str, object] | None = None,
        start: bool = True,
    ) -> LbProcess:
        cfg = {
            "nats.servers": [self.nats.url],
            "clustering.namespace": self.namespace,
            "clustering.server.id": name,
            "logging.level": "debug",
            **(config or {}),
        }
        proc = new_lb_process(self.base_dir, name, args, cfg)
        self.servers[name] = proc
        if start:
            proc.start()
        return proc

    def restart(self, name: str) -> LbProcess:
        """Start a stopped or killed server again on the same data dir and port."""
        old = self.servers[name]
        old.stop()
        proc = LbProcess(old.data_dir, old.port, old.args, old.config, old.log_path)
        self.servers[name] = proc
        return proc.start()

    def kill(self, name: str) -> None:
        proc = self.servers[name]
        proc.signal(signal.SIGKILL)
        proc.wait(10)

    def alive(self) -> list[str]:
        return [
            n for n, p in self.servers.items() if p.process is not None and p.process.poll() is None
        ]

    def leader_seen_by(self, name: str) -> str:
        """The latest metadata leader that server ``name`` logged ("" if none yet)."""
        found = _LEADER_RE.findall(self.servers[name].output())
        return found[-1] if found and found[-1] != "unknown" else ""

    def wait_leader(self, among: Sequence[str] | None = None, timeout_s: float = 30.0) -> str:
        """Wait until every server in ``among`` (default: alive ones) names the same leader."""
        names = list(among) if among is not None else self.alive()

        def agreed() -> str:
            leaders = {self.leader_seen_by(n) for n in names}
            if len(leaders) == 1:
                (leader,) = leaders
                return leader if leader in names else ""
            return ""

        return wait_until(agreed, timeout_s, what=f"one metadata leader among {names}")

    def call(self, name: str, method: str, request: Any, timeout_s: float = 10.0) -> Any:
        return call(self.servers[name].port, method, request, timeout_s)

    def stop(self) -> None:
        for proc in self.servers.values():
            proc.stop()
        self.nats.stop()


@contextlib.contextmanager
def nats_cluster(base_dir: Path, namespace: str = "lbtest") -> Iterator[Cluster]:
    """A shared nats-server and an empty cluster; everything is stopped on exit."""
    cluster = Cluster(base_dir, start_nats_server(), namespace)
    try:
        yield cluster
    finally:
        cluster.stop()
