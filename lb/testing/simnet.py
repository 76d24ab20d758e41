"""A seeded in-memory network and a tick loop that hosts pure state machines on it.

Nothing here knows about Raft: messages are opaque, addressed by node id. The network can drop,
delay (in ticks), duplicate and therefore reorder messages, and cut the nodes into groups. Every
random choice comes from the one ``random.Random`` passed in, so a run is a function of its seed.

:class:`SimWorld` drives any set of :class:`SimHost` objects on the same clock; the Raft
simulator (:mod:`lb.testing.raft_sim`) is one user, the partition replication core can be
another.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

M = TypeVar("M")


@dataclass(slots=True)
class NetFaults:
    """Per-message fault probabilities and the delay range (ticks, inclusive)."""

    drop_prob: float = 0.0
    dup_prob: float = 0.0
    delay_ticks_min: int = 1
    delay_ticks_max: int = 1

    def __post_init__(self) -> None:
        assert 0.0 <= self.drop_prob < 1.0 and 0.0 <= self.dup_prob < 1.0
        assert 0 <= self.delay_ticks_min <= self.delay_ticks_max


@dataclass(slots=True)
class NetStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    cut: int = 0
    """Dropped at delivery time because a partition separated the two ends."""


class SimNetwork(Generic[M]):
    """Messages in flight, each due at a tick; delivery order is (due tick, send order)."""

    def __init__(
        self, rng: random.Random, faults: NetFaults | None = None, in_flight_max: int = 200_000
    ) -> None:
        self._rng = rng
        self.faults = faults or NetFaults()
        self.in_flight_max = in_flight_max
        self._heap: list[tuple[int, int, str, str, M]] = []
        self._seq = 0
        self._group: dict[str, int] = {}
        self._isolations = 0
        self.stats = NetStats()

    # -- topology -----------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Only nodes in the same group can talk; nodes not named form one more group."""
        self._group = {}
        for i, g in enumerate(groups):
            for node in g:
                self._group[node] = i + 1

    def isolate(self, node: str) -> None:
        """Cut ``node`` off from everyone (other partitions stay as they are)."""
        self._isolations += 1
        self._group[node] = -self._isolations  # a group of its own

    def heal(self) -> None:
        self._group = {}

    def connected(self, a: str, b: str) -> bool:
        return self._group.get(a, 0) == self._group.get(b, 0)

    def is_partitioned(self) -> bool:
        return bool(self._group)

    # -- traffic ------------------------------------------------------------------------

    def send(self, now: int, src: str, dst: str, msg: M) -> None:
        self.stats.sent += 1
        f = self.faults
        rng = self._rng
        if f.drop_prob and rng.random() < f.drop_prob:
            self.stats.dropped += 1
            return
        copies = 2 if f.dup_prob and rng.random() < f.dup_prob else 1
        if copies == 2:
            self.stats.duplicated += 1
        for _ in range(copies):
            if len(self._heap) >= self.in_flight_max:
                self.stats.dropped += 1
                return
            delay = f.delay_ticks_min
            if f.delay_ticks_max > f.delay_ticks_min:
                span = f.delay_ticks_max - f.delay_ticks_min + 1
                delay = f.delay_ticks_min + int(rng.random() * span)
            self._seq += 1
            heapq.heappush(self._heap, (now + delay, self._seq, src, dst, msg))

    def due(self, now: int) -> list[tuple[str, str, M]]:
        """Pop every message due at or before ``now`` whose ends are still connected."""
        out: list[tuple[str, str, M]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, src, dst, msg = heapq.heappop(heap)
            if self._group and not self.connected(src, dst):
                self.stats.cut += 1
                continue
            out.append((src, dst, msg))
        self.stats.delivered += len(out)
        return out

    def in_flight(self) -> int:
        return len(self._heap)


class SimHost(Protocol[M]):
    """A node hosted by :class:`SimWorld`: a pure core plus its simulated driver and disk."""

    node_id: str

    def is_up(self) -> bool: ...

    def receive(self, now: int, src: str, msg: M) -> None:
        """Deliver one message (only called while up)."""

    def on_tick(self, now: int) -> list[tuple[str, M]]:
        """Advance one tick (also called while down, e.g. to restart); return (dst, msg) pairs
        to send."""
        ...


@dataclass
class SimWorld(Generic[M]):
    """The clock: each tick delivers due messages, then ticks every host in a fixed order."""

    net: SimNetwork[M]
    hosts: dict[str, SimHost[M]] = field(default_factory=dict)
    now: int = 0

    def add(self, host: SimHost[M]) -> None:
        assert host.node_id not in self.hosts
        self.hosts[host.node_id] = host

    def run_tick(self) -> None:
        self.now += 1
        now = self.now
        for src, dst, msg in self.net.due(now):
            host = self.hosts.get(dst)
            if host is not None and host.is_up():
                host.receive(now, src, msg)
        for host in self.hosts.values():
            for dst, msg in host.on_tick(now):
                if dst in self.hosts:
                    self.net.send(now, host.node_id, dst, msg)
