"""The partition simulator's controller as a real Raft group (``run_seed(raft_controller=True)``).

Three controller nodes (``c0``..``c2``) each run :class:`lb.raft.RaftNode` on the same
:class:`~lb.testing.simnet.SimWorld`, network and clock as the partition replicas, so every
network fault (drop, duplication, delay, partitions) hits Raft traffic and controller traffic
alike. Each node's driver follows the Ready contract against a
:class:`~lb.testing.raft_sim.SimDisk` (persist, then send, then apply) and applies committed
entries, encoded ``lb.metadata.ops`` MetadataOps, to its own ``MetadataFSM``. Nodes crash
(before persisting or after persisting but before sending, as in :mod:`lb.testing.raft_sim`)
and restart from their disk; the FSM is rebuilt from the Raft snapshot plus the replayed log.

Replicas talk to "the controller" by message: ISR proposals, leader-failure reports and
restart hellos go to the node they believe leads (a hint carried by every state message, else
round robin). Only a *serving* leader acts on them: it leads, and it has applied every entry
before its own term's first entry, so its FSM holds everything committed by earlier leaders.
Others answer with their view and leader hint; nothing is retried by the controller, replicas
retry on their own timers.

- ISR changes: checked against the leader's applied record for a fast reject, then proposed
  with the partition epoch they were based on (``partition_epoch`` of the op), so the FSM
  rejects stale ones at apply, whatever the leader believed when proposing.
- Leader reports: the leader's ``LeaderFailureTracker`` (volatile, reset on every term) over
  its applied state; the ChangeLeader op carries the generation it replaces.
- Hellos after a replica restart: the answer (the epoch floor below which the replica may not
  lead) must not be based on a stale state. The leader first commits a barrier entry proposed
  after the hello arrived (a RegisterServer op, idempotent): once it is applied in the same
  term, the FSM holds every entry committed before the hello, hence every epoch the replica
  could have led before its crash. If the replica still leads there, the leader commits a
  ChangeLeader (to another ISR member, else the same replica) and acks with the new epoch.

Every live node broadcasts its applied partition record to the replicas when it changes and
every ``ctl_broadcast_ticks``; replicas keep the record with the highest partition epoch, so
stale senders are harmless. :class:`lb.testing.checkers.RaftChecker` watches the group
(election safety, leader completeness, log matching, state-machine safety, durable votes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lb.metadata import LeaderFailureTracker, LeaderReport, MetadataError, MetadataFSM, Placement
from lb.metadata.ops import (
    change_leader_op,
    create_stream_op,
    decode_op,
    encode_op,
    expand_isr_op,
    op_kind,
    register_server_op,
    shrink_isr_op,
)
from lb.metadata.placement import select_leader
from lb.raft import (
    Entry,
    EntryKind,
    HardState,
    Message,
    RaftConfig,
    RaftError,
    RaftNode,
    Role,
)
from lb.replication import IsrChange, IsrChangeKind
from lb.testing.checkers import RaftChecker
from lb.testing.raft_sim import SimDisk

if TYPE_CHECKING:
    from lb.testing.repl_sim import ReplSim

CTL_IDS = ("c0", "c1", "c2")

_HEADER_BYTES = 24  # snapshot data: digest (16) + applied index (8) + MetadataSnapshot


@dataclass
class RaftCtlParams:
    election_timeout_ticks: int = 20
    heartbeat_ticks: int = 4
    snapshot_threshold: int = 40
    compaction_trailing_entries: int = 8
    crash_prob: float = 0.0
    """Per Ready and crash point (before persist; after persist, before send)."""
    down_ticks_max: int = 60

    @staticmethod
    def draw(rng: random.Random) -> RaftCtlParams:
        return RaftCtlParams(
            election_timeout_ticks=rng.choice([10, 20, 30]),
            snapshot_threshold=rng.choice([15, 40, 1000]),
            compaction_trailing_entries=rng.choice([0, 8]),
            crash_prob=rng.choice([0.0, 0.0, 0.001, 0.003]),
            down_ticks_max=rng.choice([20, 60, 150]),
        )


@dataclass
class _PendingHello:
    incarnation: int
    barrier: int
    """Raft index that must be applied (in the same term) before deciding."""
    stale_epoch: int | None = None
    """Leader epoch the replica held when we proposed its re-election."""


class CtlNode:
    """One controller node: a RaftNode, its driver, disk and metadata FSM."""

    def __init__(self, ctl: RaftController, node_id: str) -> None:
        self.ctl = ctl
        self.sim = ctl.sim
        self.node_id = node_id
        self.disk = SimDisk()
        self.node: RaftNode | None = None
        self.restart_at = 0
        self.crashes = 0
        self._outbox: list[tuple[str, object]] = []
        self._fresh_state()
        self.node = RaftNode.bootstrap_peers(self._config(), list(ctl.ids))

    def _fresh_state(self) -> None:
        p = self.sim.params
        self.fsm = MetadataFSM()
        self.applied = 0
        self.digest = b""
        self.last_snapshot_index = 0
        self.tracker = LeaderFailureTracker(p.leader_timeout_ticks * p.tick_ns)
        self.lead_term = 0
        self.term_start = 0
        self.pending_hellos: dict[str, _PendingHello] = {}
        self.acked_hellos: dict[str, tuple[int, int]] = {}
        self.create_proposed = False
        self.last_view = None

    def _config(self) -> RaftConfig:
        rp = self.ctl.params
        return RaftConfig(
            id=self.node_id,
            rng=random.Random(self.sim.rng.getrandbits(64)),
            election_timeout_ticks=rp.election_timeout_ticks,
            heartbeat_ticks=rp.heartbeat_ticks,
            inflight_msgs_max=8,
            append_bytes_max=4096,
            uncommitted_entries_max=128,
            compaction_trailing_entries=rp.compaction_trailing_entries,
        )

    # -- SimHost --

    def is_up(self) -> bool:
        return self.node is not None

    def receive(self, now: int, src: str, msg: object) -> None:
        node = self.node
        assert node is not None
        if isinstance(msg, Message):
            node.step(msg)
            self.ctl.checker.observe(now, node)
            self._track_leadership()
        else:
            self._on_request(now, src, msg)

    def on_tick(self, now: int) -> list[tuple[str, object]]:
        if self.node is None:
            if now >= self.restart_at:
                self.restart(now)
            return self._flush()
        self.node.tick()
        self.ctl.checker.observe(now, self.node)
        self._track_leadership()
        if self._serving():
            self._leader_duties(now)
        self._process(now)
        if self.node is not None:
            self._after_apply(now)
        return self._flush()

    def _flush(self) -> list[tuple[str, object]]:
        out, self._outbox = self._outbox, []
        return out

    # -- crash / restart --

    def crash(self, now: int, why: str) -> None:
        self.node = None
        self.crashes += 1
        self._outbox.clear()
        self.ctl.checker.forget(self.node_id)
        self.restart_at = now + 1 + self.sim.rng.randrange(self.ctl.params.down_ticks_max)
        self.sim.event(now, f"{self.node_id} crashes {why}")

    def restart(self, now: int) -> None:
        d = self.disk
        self._fresh_state()
        cfg = self._config()
        if d.hard_state == HardState() and not d.entries and not d.snapshot.index:
            self.node = RaftNode.bootstrap_peers(cfg, list(self.ctl.ids))
        else:
            self.node = RaftNode.restart(cfg, d.hard_state, d.snapshot, list(d.entries))
            if d.snapshot.index:
                self._restore(now, d.snapshot.data)
                self.last_snapshot_index = d.snapshot.index
        self.sim.event(now, f"{self.node_id} restarts")

    def _restore(self, now: int, data: bytes) -> None:
        self.digest = data[:16]
        self.applied = int.from_bytes(data[16:_HEADER_BYTES], "big")
        self.fsm = MetadataFSM()
        self.fsm.restore(data[_HEADER_BYTES:])
        self.ctl.checker.on_restore(now, self.node_id, self.applied, self.digest)

    # -- the Ready loop --

    def _process(self, now: int) -> None:
        """One turn of the driver loop: persist, send, apply, advance."""
        node = self.node
        assert node is not None
        rd = node.ready()
        if rd is None:
            return
        if self.ctl.crash_point():
            self.crash(now, "before persist")
            return
        checker = self.ctl.checker
        old_commit = self.disk.hard_state.commit
        self.disk.persist(rd.snapshot, rd.entries, rd.hard_state)
        if rd.hard_state is not None:
            checker.on_hard_state(now, self.node_id, rd.hard_state)
            if rd.hard_state.commit > old_commit:
                checker.on_commit_persisted(now, node, old_commit, rd.hard_state.commit)
        if rd.messages and self.ctl.crash_point():
            self.crash(now, "after persist, before send")
            return
        self._outbox.extend((m.to, m) for m in rd.messages)
        if rd.snapshot is not None:
            self._restore(now, rd.snapshot.data)
            self.last_snapshot_index = rd.snapshot.index
        for e in rd.committed_entries:
            self._apply(now, e)
        node.advance(rd)
        if self.applied - self.last_snapshot_index >= self.ctl.params.snapshot_threshold:
            data = self.digest + self.applied.to_bytes(8, "big") + self.fsm.snapshot()
            snap = node.compact(self.applied, data)
            self.disk.save_snapshot(snap, node.first_index())
            self.last_snapshot_index = snap.index
            self.ctl.stats["snapshots"] += 1

    def _apply(self, now: int, e: Entry) -> None:
        self.digest = self.ctl.checker.on_apply(now, self.node_id, self.applied, self.digest, e)
        self.applied = e.index
        if e.kind is not EntryKind.NORMAL or not e.data:
            return
        res = self.fsm.apply(e.data, e.index)
        self.ctl.on_applied(e.index, op_kind(decode_op(e.data)), res.ok)

    # -- leadership --

    def _track_leadership(self) -> None:
        node = self.node
        assert node is not None
        if node.role is Role.LEADER and node.term != self.lead_term:
            self.lead_term = node.term
            self.term_start = node.log.last_index()  # the new leader's no-op
            self.tracker.clear()
            self.pending_hellos.clear()
            self.acked_hellos.clear()
            self.create_proposed = False
        elif node.role is not Role.LEADER and self.lead_term:
            self.lead_term = 0
            self.pending_hellos.clear()

    def _serving(self) -> bool:
        node = self.node
        return (
            node is not None
            and node.role is Role.LEADER
            and node.term == self.lead_term
            and self.applied >= self.term_start - 1
        )

    def leader_hint(self) -> str:
        return self.node.lead if self.node is not None else ""

    def view(self):  # type: ignore[no-untyped-def]
        return self.ctl.view_of(self.fsm)

    def _state_msg(self, hello_ack: tuple[str, int, int] | None = None) -> object | None:
        v = self.view()
        if v is None:
            return None
        return self.ctl.state_msg(v, hello_ack, self.leader_hint())

    def _propose(self, op: object) -> int | None:
        assert self.node is not None
        try:
            index = self.node.propose(encode_op(op))  # type: ignore[arg-type]
        except RaftError:
            return None
        self.ctl.stats["proposals"] += 1
        return index

    def _leader_duties(self, now: int) -> None:
        sim = self.sim
        if self.view() is None and not self.create_proposed:
            ids = sim.ids
            if self._propose(create_stream_op(
                name=self.ctl.stream, subject=self.ctl.stream,
                placements=[Placement(self.ctl.partition, ids, ids[0])],
                creation_timestamp_ns=0, replication_factor=len(ids),
            )) is not None:
                self.create_proposed = True
        if now % sim.params.ctl_broadcast_ticks == 0:
            self.tracker.expire(now * sim.params.tick_ns)

    def _after_apply(self, now: int) -> None:
        if self._serving():
            for node_id in list(self.pending_hellos):
                self._decide_hello(now, node_id)
        v = self.view()
        periodic = now % self.sim.params.ctl_broadcast_ticks == 0
        if v is not None and (v != self.last_view or periodic):
            if v != self.last_view and self.node is not None and self.node.role is Role.LEADER:
                self.sim.event(now, f"{self.node_id}: {v}")
            self.last_view = v
            msg = self.ctl.state_msg(v, None, self.leader_hint())
            for r in self.sim.ids:
                self._outbox.append((r, msg))

    # -- requests from replicas --

    def _on_request(self, now: int, src: str, msg: object) -> None:
        if not self._serving():
            reply = self._state_msg()
            if reply is not None:
                self._outbox.append((src, reply))
            return
        hello = self.ctl.hello_fields(msg)
        if isinstance(msg, IsrChange):
            self._on_isr_change(src, msg)
        elif isinstance(msg, LeaderReport):
            try:
                op = self.tracker.report(self.fsm.state, msg, now * self.sim.params.tick_ns)
            except MetadataError:
                op = None
            if op is not None and self._propose(op) is not None:
                self.ctl.stats["elections_proposed"] += 1
        elif hello is not None:
            self._on_hello(now, src, *hello)
        else:
            raise AssertionError(f"unexpected message {msg!r}")

    def _on_isr_change(self, src: str, msg: IsrChange) -> None:
        v = self.view()
        if v is None:
            return
        if (msg.leader, msg.leader_epoch, msg.partition_epoch) != (
            v.leader, v.leader_epoch, v.epoch
        ):
            self.ctl.rejected += 1
            self._outbox.append((src, self.ctl.state_msg(v, None, self.leader_hint())))
            return
        s, p = self.ctl.stream, self.ctl.partition
        build = shrink_isr_op if msg.kind is IsrChangeKind.SHRINK else expand_isr_op
        self._propose(build(s, p, msg.replica, msg.leader, msg.leader_epoch, msg.partition_epoch))

    def _on_hello(self, now: int, src: str, node_id: str, incarnation: int) -> None:
        acked = self.acked_hellos.get(node_id)
        if acked is not None and acked[0] == incarnation:
            reply = self._state_msg((node_id, incarnation, acked[1]))
            if reply is not None:
                self._outbox.append((src, reply))
            return
        if acked is not None and acked[0] > incarnation:
            return
        pending = self.pending_hellos.get(node_id)
        if pending is not None and pending.incarnation >= incarnation:
            return
        barrier = self._propose(register_server_op(node_id, "sim", 1))
        if barrier is not None:
            self.pending_hellos[node_id] = _PendingHello(incarnation, barrier)

    def _decide_hello(self, now: int, node_id: str) -> None:
        p = self.pending_hellos[node_id]
        if self.applied < p.barrier:
            return
        v = self.view()
        if (
            v is None
            or v.leader != node_id
            or (p.stale_epoch is not None and v.leader_epoch > p.stale_epoch)
        ):
            floor = v.leader_epoch if v is not None else 0
            del self.pending_hellos[node_id]
            self.acked_hellos[node_id] = (p.incarnation, floor)
            reply = self._state_msg((node_id, p.incarnation, floor))
            if reply is not None:
                self._outbox.append((node_id, reply))
            return
        others = [r for r in v.isr if r != node_id]
        new = select_leader(others, self.fsm.state.leader_load()) if others else node_id
        s, part = self.ctl.stream, self.ctl.partition
        index = self._propose(change_leader_op(s, part, new, node_id, v.leader_epoch))
        if index is not None:
            p.barrier = index
            p.stale_epoch = v.leader_epoch
            self.ctl.stats["restart_elections_proposed"] += 1


class RaftController:
    """The controller group as the replication simulator sees it."""

    def __init__(self, sim: ReplSim, ids: tuple[str, ...] = CTL_IDS) -> None:
        from lb.testing import repl_sim as rs

        self._rs = rs
        self.sim = sim
        self.ids = ids
        self.stream = rs.STREAM
        self.partition = rs.PARTITION
        self.params = RaftCtlParams.draw(sim.rng)
        self.checker = RaftChecker()
        self.calm = False
        self.rejected = 0
        self.stats: dict[str, int] = {
            k: 0 for k in ("proposals", "snapshots", "elections_proposed",
                           "restart_elections_proposed")
        }
        self._applied_max = 0
        self.nodes: dict[str, CtlNode] = {i: CtlNode(self, i) for i in ids}

    # -- used by the nodes --

    def crash_point(self) -> bool:
        p = self.params.crash_prob
        return bool(p) and not self.calm and self.sim.rng.random() < p

    def view_of(self, fsm: MetadataFSM):  # type: ignore[no-untyped-def]
        p = fsm.state.partition(self.stream, self.partition)
        if p is None:
            return None
        return self._rs.PartitionView(p.leader, p.leader_epoch, p.isr, p.epoch, p.replicas)

    def state_msg(self, view, hello_ack, leader_hint: str):  # type: ignore[no-untyped-def]
        return self._rs.StateMsg(view, hello_ack, leader_hint)

    def hello_fields(self, msg: object) -> tuple[str, int] | None:
        if isinstance(msg, self._rs.Hello):
            return msg.node, msg.incarnation
        return None

    def on_applied(self, index: int, kind: str, ok: bool) -> None:
        """Count each committed metadata op once (the first node to apply it)."""
        if index <= self._applied_max:
            return
        self._applied_max = index
        if not ok:
            self.sim.stats["ctl_rejected_at_apply"] = (
                self.sim.stats.get("ctl_rejected_at_apply", 0) + 1
            )
            return
        if kind in ("shrink_isr", "expand_isr"):
            self.sim.stats["isr_changes"] += 1
        elif kind == "change_leader":
            self.sim.stats["elections"] += 1

    # -- used by the simulator --

    def view(self):  # type: ignore[no-untyped-def]
        """The freshest partition record any live node has applied (None before creation)."""
        best = None
        for n in self.nodes.values():
            if n.node is None:
                continue
            v = n.view()
            if v is not None and (best is None or v.epoch > best.epoch):
                best = v
        return best

    def leader(self) -> RaftNode | None:
        best = None
        for n in self.nodes.values():
            node = n.node
            if node is not None and node.role is Role.LEADER and (
                best is None or node.term > best.term
            ):
                best = node
        return best

    def live_nodes(self) -> dict[str, RaftNode]:
        return {i: n.node for i, n in self.nodes.items() if n.node is not None}

    def heal_all(self, now: int) -> None:
        """Liveness phase: no more crashes; every down node restarts now."""
        self.calm = True
        for n in self.nodes.values():
            if n.node is None:
                n.restart_at = now

    def trace(self) -> str:
        parts = []
        for i, n in self.nodes.items():
            node = n.node
            parts.append(f"{i}:{node.role.value[0]}{node.term}/{node.log.committed}"
                         if node is not None else f"{i}:x")
        return ",".join(parts)

    def crashes(self) -> int:
        return sum(n.crashes for n in self.nodes.values())
