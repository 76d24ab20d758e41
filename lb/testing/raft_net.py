"""A synchronous, hand-steered Raft test network (the shape of etcd raft's ``network``).

Unlike :mod:`lb.testing.raft_sim`, nothing here is random: tests tick nodes and deliver messages
explicitly, cut links, isolate nodes and filter message types. Each node runs the Ready contract
against an in-memory :class:`~lb.testing.raft_sim.SimDisk` and records what it applied.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lb.raft import (
    Entry,
    EntryKind,
    Message,
    MessageType,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
)

from .raft_sim import SimDisk


def make_config(node_id: str, seed: int = 0, **overrides: object) -> RaftConfig:
    """A RaftConfig with a seeded rng and small, test-friendly limits."""
    params: dict[str, object] = {
        "election_timeout_ticks": 10,
        "heartbeat_ticks": 1,
    }
    params.update(overrides)
    rng = random.Random(f"{seed}-{node_id}")
    return RaftConfig(id=node_id, rng=rng, **params)  # type: ignore[arg-type]


@dataclass
class NetNode:
    node: RaftNode
    disk: SimDisk = field(default_factory=SimDisk)
    applied: list[Entry] = field(default_factory=list)
    readies: list[Ready] = field(default_factory=list)
    """Every Ready handled, for tests that inspect them (bounded by the test's length)."""


class RaftTestNet:
    """Nodes by id, a message pool, and explicit delivery."""

    def __init__(self, nodes: Iterable[RaftNode]) -> None:
        self.nodes: dict[str, NetNode] = {n.id: NetNode(n) for n in nodes}
        self.pool: list[Message] = []
        self.cut_links: set[frozenset[str]] = set()
        self.isolated: set[str] = set()
        self.drop: Callable[[Message], bool] | None = None
        self.delivered: list[Message] = []

    def add(self, node: RaftNode) -> None:
        self.nodes[node.id] = NetNode(node)

    def node(self, node_id: str) -> RaftNode:
        return self.nodes[node_id].node

    # -- faults -------------------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        self.cut_links.add(frozenset((a, b)))

    def isolate(self, node_id: str) -> None:
        self.isolated.add(node_id)

    def heal(self) -> None:
        self.cut_links.clear()
        self.isolated.clear()

    def _blocked(self, m: Message) -> bool:
        if m.from_ in self.isolated or m.to in self.isolated:
            return True
        if frozenset((m.from_, m.to)) in self.cut_links:
            return True
        return self.drop is not None and self.drop(m)

    # -- driving ------------------------------------------------------------------

    def process(self, node_id: str) -> None:
        """Run the Ready loop of one node until it has nothing to do."""
        nn = self.nodes[node_id]
        for _ in range(100):
            rd = nn.node.ready()
            if rd is None:
                return
            nn.readies.append(rd)
            nn.disk.persist(rd.snapshot, rd.entries, rd.hard_state)
            self.pool.extend(rd.messages)
            if rd.snapshot is not None:
                nn.applied = [Entry(rd.snapshot.term, rd.snapshot.index, EntryKind.NOOP)]
            nn.applied.extend(rd.committed_entries)
            nn.node.advance(rd)
        raise AssertionError("ready loop did not settle")

    def process_all(self) -> None:
        for node_id in self.nodes:
            self.process(node_id)

    def tick(self, node_id: str, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[node_id].node.tick()
            self.process(node_id)

    def tick_all(self, n: int = 1, deliver: bool = True) -> None:
        for _ in range(n):
            for node_id in self.nodes:
                self.nodes[node_id].node.tick()
            self.process_all()
            if deliver:
                self.deliver()

    def deliver(self, rounds_max: int = 1000) -> int:
        """Deliver pooled messages (and the replies they cause) until quiet."""
        count = 0
        for _ in range(rounds_max):
            self.process_all()
            if not self.pool:
                return count
            batch, self.pool = self.pool, []
            for m in batch:
                if m.to not in self.nodes or self._blocked(m):
                    continue
                self.delivered.append(m)
                self.nodes[m.to].node.step(m)
                count += 1
        raise AssertionError("messages did not settle")

    def leader(self) -> str | None:
        leaders = [i for i, nn in self.nodes.items() if nn.node.role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda i: self.nodes[i].node.term)

    def elect(self, node_id: str) -> None:
        """Make ``node_id`` campaign and deliver until the election settles."""
        self.node(node_id).campaign()
        self.deliver()

    def applied_data(self, node_id: str) -> list[bytes]:
        return [e.data for e in self.nodes[node_id].applied if e.kind is EntryKind.NORMAL]

    def sent(self, mtype: MessageType, from_: str | None = None) -> list[Message]:
        return [
            m for m in self.delivered if m.type is mtype and (from_ is None or m.from_ == from_)
        ]
