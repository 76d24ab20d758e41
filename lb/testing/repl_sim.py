"""Deterministic simulation of one replicated partition on :mod:`lb.testing.simnet`.

Every replica is a :class:`ReplHost`: the pure cores of :mod:`lb.replication` (a
``LeaderState`` or a ``FollowerState``, plus ``PendingAcks``) driven by a small simulated
partition task over an in-memory log (:mod:`lb.testing.repl_log`). A controller host holds the
real metadata state machine (``lb.metadata.MetadataFSM``) and ``LeaderFailureTracker``: it
applies ShrinkIsr/ExpandIsr/ChangeLeader ops and broadcasts the partition record, as the Raft
driver would. It never crashes (Raft makes the controller durable), but it can be cut off.

Controller rules the simulation adds on top of the FSM (the real controller must do the same;
see the report in the repository history):

* ISR changes are conditional on the partition epoch they were based on (Kafka's
  AlterPartition). A delayed or duplicated ExpandIsr cannot re-add a replica that was removed
  after it was sent. The metadata op has no such field, so the controller checks it before
  proposing; in the simulator check and apply are one step.
* A replica that restarts says hello (with an incarnation number) before it may lead. If the
  controller still records it as leader, it elects a leader again (another ISR member if there
  is one, else the same replica), so a leader never resumes an epoch whose unsynced tail it
  lost: followers could hold different data under the same epoch.

Faults, drawn from the seed: message drop, duplication, delay (so reordering), partitions
(the controller included), crash-restarts that lose each log's unsynced tail. The fsync model:
``sync_every_ticks`` 0 syncs every append (strict: nothing acknowledged is ever lost to a
crash); otherwise logs and HW checkpoints sync every that many ticks. The leader releases LEADER
acks at its durable offset.

Checkers (:class:`ReplChecker`): HW <= LEO - 1 and HW monotonic on every replica (per
incarnation); a global record of committed entries (the first leader to commit an offset fixes
it; any other leader committing something else there is divergence); every replica's log up to
its HW equals that record; a new leader holds every committed entry; every ALL ack names a
committed entry; at the end every ALL-acked entry is on every live ISR replica; LEADER-acked
entries may be lost only across a leader change (counted). Offsets that a crash removed from
some log's unsynced tail are *tainted*: losing them is the fsync policy's known risk and is
counted, not failed. Strict seeds have no taint. Liveness: after healing, a leader exists and
a new ALL publish is acked within a bounded number of ticks.

Raft-controller mode (``run_seed(seed, raft_controller=True)``, :mod:`lb.testing.repl_raft`):
the controller is three ``lb.raft.RaftNode`` nodes on the same network and clock, each applying
committed MetadataOps to its own FSM; replicas send their requests to the Raft leader and learn
the partition record from controller broadcasts. The stream itself is created through Raft. The
same replica checkers run, plus ``lb.testing.checkers.RaftChecker`` over the controller group.

``run_seed(seed)`` is a pure function of its arguments; ``SimResult.trace_hash`` proves it.
"""

from __future__ import annotations

import hashlib
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from lb.metadata import LeaderFailureTracker, LeaderReport, MetadataError, MetadataFSM, Placement
from lb.metadata.ops import change_leader_op, create_stream_op, expand_isr_op, shrink_isr_op
from lb.metadata.placement import select_leader
from lb.replication import (
    UNDEFINED,
    AckPolicy,
    EpochRequest,
    EpochResponse,
    FetchRequest,
    FetchResponse,
    FetchVerdict,
    FollowerState,
    IsrChange,
    IsrChangeKind,
    LeaderState,
    OutcomeKind,
    PendingAcks,
    Phase,
    Truncation,
)
from lb.testing.repl_log import Entry, MemLog
from lb.testing.repl_raft import CTL_IDS, RaftController
from lb.testing.simnet import NetFaults, SimNetwork, SimWorld

STREAM = "s"
PARTITION = 0
CTL = "ctl"


# ----- parameters ----------------------------------------------------------------------


@dataclass
class ReplFaults:
    """Fault profile of the fault phase. Probabilities are per tick (per node for crashes)."""

    net: NetFaults = field(default_factory=NetFaults)
    crash_prob: float = 0.0
    down_ticks_max: int = 60
    partition_prob: float = 0.0
    heal_prob: float = 0.05
    sync_every_ticks: int = 0
    """0: every append is synced at once (strict); n: logs sync every n ticks."""

    @staticmethod
    def draw(rng: random.Random) -> ReplFaults:
        if rng.random() < 0.1:
            return ReplFaults(net=NetFaults(0.0, 0.0, 1, rng.randint(1, 2)))
        return ReplFaults(
            net=NetFaults(
                drop_prob=rng.choice([0.0, 0.02, 0.05, 0.15]),
                dup_prob=rng.choice([0.0, 0.02, 0.1]),
                delay_ticks_min=1,
                delay_ticks_max=rng.choice([1, 2, 4, 8, 40]),
            ),
            crash_prob=rng.choice([0.0, 0.002, 0.005, 0.01]),
            down_ticks_max=rng.choice([10, 40, 100]),
            partition_prob=rng.choice([0.0, 0.005, 0.02]),
            heal_prob=rng.choice([0.005, 0.02, 0.05, 0.1]),
            sync_every_ticks=rng.choice([0, 0, 0, 2, 10]),
        )


@dataclass
class ReplParams:
    """Timing (in ticks; one tick is ``tick_ns``) and load."""

    tick_ns: int = 1_000_000
    lag_ticks: int = 60
    leader_timeout_ticks: int = 80
    idle_wait_ticks: int = 15
    idle_jitter_ticks: int = 3
    fetch_timeout_ticks: int = 25
    report_every_ticks: int = 20
    hello_every_ticks: int = 20
    ctl_broadcast_ticks: int = 25
    proposal_retry_ticks: int = 40
    fetch_batch_max: int = 8
    """Entries per fetch response (replication.max.bytes, in entries)."""
    publish_prob: float = 0.4
    all_ratio: float = 0.6
    acks_pending_max: int = 256
    min_isr: int | None = None
    """None: drawn from the seed (1 .. replicas // 2 + 1)."""
    liveness_ticks_max: int = 1500


# ----- messages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionView:
    leader: str
    leader_epoch: int
    isr: tuple[str, ...]
    epoch: int
    replicas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StateMsg:
    """The controller's partition record; ``hello_ack`` = (node, incarnation, lead floor)."""

    view: PartitionView
    hello_ack: tuple[str, int, int] | None = None
    ctl_leader: str = ""
    """Raft-controller mode: the sender's idea of the controller leader ("" = unknown)."""


@dataclass(frozen=True, slots=True)
class Hello:
    node: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class DataResponse:
    resp: FetchResponse
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Notify:
    leader_epoch: int


Msg = object


# ----- the checker ---------------------------------------------------------------------


class ReplChecker:
    """Safety invariants over the whole run (see the module docstring)."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.committed: list[Entry] = []
        self.tainted: set[int] = set()
        self.excused = 0
        self.all_acked: dict[int, bytes] = {}
        self.leader_acked: list[tuple[int, bytes, int]] = []
        self._hw: dict[str, tuple[int, int]] = {}  # node -> (incarnation, hw)
        self._verified: dict[str, int] = {}  # node -> offsets [0, n) checked against committed

    def add(self, text: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(text)

    def _same_or_excused(self, offset: int, entry: Entry) -> bool:
        if offset < len(self.committed) and self.committed[offset] == entry:
            return True
        if offset in self.tainted:
            self.excused += 1
            return True
        return False

    def on_crash(self, lost: range) -> None:
        self.tainted.update(lost)

    def on_commit(self, now: int, node: str, offset: int, entry: Entry) -> None:
        if offset < len(self.committed):
            if self.committed[offset] != entry:
                if offset in self.tainted:
                    self.excused += 1
                    self.committed[offset] = entry
                else:
                    self.add(f"t={now}: {node} commits {entry} at {offset}, "
                             f"but {self.committed[offset]} was committed there")
        elif offset == len(self.committed):
            self.committed.append(entry)
        else:
            self.add(f"t={now}: {node} commits offset {offset} past the committed end "
                     f"{len(self.committed)}")

    def on_all_ack(self, now: int, node: str, offset: int, payload: bytes) -> None:
        committed = offset < len(self.committed) and self.committed[offset][1] == payload
        if not committed and offset not in self.tainted:
            self.add(f"t={now}: {node} ALL-acks {payload!r}@{offset}, not the committed entry")
        self.all_acked[offset] = payload

    def on_new_leader(self, now: int, node: str, log: MemLog) -> None:
        for o, entry in enumerate(self.committed):
            if o >= log.leo or log.entries[o] != entry:
                if o in self.tainted:
                    self.excused += 1
                    continue
                have = log.entries[o] if o < log.leo else None
                self.add(f"t={now}: new leader {node} lacks committed {entry} at {o} "
                         f"(has {have})")
                return

    def reset_node(self, node: str, incarnation: int, hw: int) -> None:
        self._hw[node] = (incarnation, hw)
        self._verified[node] = min(self._verified.get(node, 0), hw + 1)

    def on_truncate(self, node: str, offset: int) -> None:
        self._verified[node] = min(self._verified.get(node, 0), offset)

    def observe(self, now: int, node: str, incarnation: int, log: MemLog, hw: int) -> None:
        if not UNDEFINED <= hw <= log.leo - 1:
            self.add(f"t={now}: {node} HW {hw} outside [-1, LEO-1={log.leo - 1}]")
        inc, last = self._hw.get(node, (incarnation, UNDEFINED))
        if inc == incarnation and hw < last:
            self.add(f"t={now}: {node} HW went back {last} -> {hw}")
        self._hw[node] = (incarnation, hw)
        if hw >= len(self.committed):
            self.add(f"t={now}: {node} HW {hw} beyond anything committed "
                     f"({len(self.committed) - 1})")
            return
        start = self._verified.get(node, 0)
        for o in range(start, hw + 1):
            if log.entries[o] != self.committed[o] and not self._same_or_excused(o, log.entries[o]):
                self.add(f"t={now}: {node} has {log.entries[o]} at committed offset {o}, "
                         f"committed is {self.committed[o]}")
                break
        if hw + 1 > start:
            self._verified[node] = hw + 1


# ----- a replica -----------------------------------------------------------------------


LeaderFactory = Callable[..., LeaderState]
FollowerFactory = Callable[..., FollowerState]


class ReplHost:
    """One replica: the cores plus a simulated partition task and its in-memory log."""

    def __init__(self, sim: ReplSim, node_id: str) -> None:
        self.sim = sim
        self.node_id = node_id
        self.log = MemLog()
        self.up = True
        self.incarnation = 1
        self.restart_at: int | None = None
        self.crashes = 0
        self.view: PartitionView | None = None
        self.acked_hello = True  # the first incarnation leads whatever the creation says
        self.lead_floor = 0
        self.last_hello = -(10**9)
        self.leader: LeaderState | None = None
        self.follower: FollowerState | None = None
        self.acks: PendingAcks[tuple[int, bytes]] = PendingAcks(sim.params.acks_pending_max)
        self.hw = UNDEFINED
        self.ctl_hint = ""
        self._ctl_rr = 0
        self._outbox: list[tuple[str, Msg]] = []
        self._reset_loop(0)

    def ctl_dest(self) -> str:
        """Where controller requests go: the one controller, or the hinted Raft leader (round
        robin over the controller nodes while no hint is known)."""
        ids = self.sim.ctl_ids
        if len(ids) == 1:
            return ids[0]
        if self.ctl_hint:
            return self.ctl_hint
        self._ctl_rr += 1
        return ids[self._ctl_rr % len(ids)]

    def _reset_loop(self, now: int) -> None:
        self.inflight_at: int | None = None
        self.epoch_req_at: int | None = None
        self.next_fetch_at = now
        self.notified = False
        self.last_report = -(10**9)

    # -- SimHost --

    def is_up(self) -> bool:
        return self.up

    def send(self, dst: str, msg: Msg) -> None:
        self._outbox.append((dst, msg))

    def receive(self, now: int, src: str, msg: Msg) -> None:
        if isinstance(msg, FetchRequest):
            self._on_fetch_request(now, src, msg)
        elif isinstance(msg, DataResponse):
            self._on_data(now, msg)
        elif isinstance(msg, EpochRequest):
            if self.leader is not None:
                self.send(src, self.leader.answer_epoch_request(msg, self.log.epochs))
        elif isinstance(msg, EpochResponse):
            self._on_epoch_response(now, msg)
        elif isinstance(msg, Notify):
            if self.follower is not None and msg.leader_epoch == self.follower.leader_epoch:
                self.notified = True
        elif isinstance(msg, StateMsg):
            self._on_state(now, msg)
        else:
            raise AssertionError(f"unexpected message {msg!r}")

    def on_tick(self, now: int) -> list[tuple[str, Msg]]:
        if not self.up:
            if self.restart_at is not None and now >= self.restart_at:
                self.restart(now)
            return self._flush()
        p = self.sim.params
        now_ns = now * p.tick_ns
        every = self.sim.faults.sync_every_ticks
        if every == 0 or now % every == 0:
            self.log.sync(self.hw)
        if not self.acked_hello and now - self.last_hello >= p.hello_every_ticks:
            self.last_hello = now
            self.send(self.ctl_dest(), Hello(self.node_id, self.incarnation))
        if self.leader is not None:
            for change in self.leader.tick(now_ns):
                self.send(self.ctl_dest(), change)
            self._release_leader_acks(now)
        elif self.follower is not None:
            self._follower_tick(now, now_ns)
        return self._flush()

    def _flush(self) -> list[tuple[str, Msg]]:
        out, self._outbox = self._outbox, []
        return out

    # -- crash / restart --

    def crash(self, now: int, down_ticks: int) -> None:
        self.up = False
        self.crashes += 1
        lost = self.log.crash()
        self.sim.checker.on_crash(lost)
        self.sim.checker.on_truncate(self.node_id, self.log.leo)
        self.leader = None
        self.follower = None
        self.acks.drain()
        self.view = None
        self._outbox.clear()
        self.restart_at = now + down_ticks
        self.sim.event(now, f"{self.node_id} crashes (lost {len(lost)}), down {down_ticks}")

    def restart(self, now: int) -> None:
        self.up = True
        self.restart_at = None
        self.incarnation += 1
        self.hw = min(self.log.hw_checkpoint, self.log.leo - 1)
        self.acked_hello = False
        self.lead_floor = 0
        self.last_hello = -(10**9)
        self._reset_loop(now)
        self.sim.checker.reset_node(self.node_id, self.incarnation, self.hw)
        self.sim.event(now, f"{self.node_id} restarts at LEO {self.log.leo} HW {self.hw}")

    # -- metadata --

    def _on_state(self, now: int, msg: StateMsg) -> None:
        if msg.ctl_leader or len(self.sim.ctl_ids) > 1:
            self.ctl_hint = msg.ctl_leader
        if msg.hello_ack is not None:
            node, inc, floor = msg.hello_ack
            if node == self.node_id and inc == self.incarnation and not self.acked_hello:
                self.acked_hello = True
                self.lead_floor = floor
        v = msg.view
        if self.view is not None and v.epoch < self.view.epoch:
            return
        self.view = v
        now_ns = now * self.sim.params.tick_ns
        if v.leader == self.node_id:
            if not self.acked_hello or v.leader_epoch < self.lead_floor:
                self._step_down()
                return
            if self.leader is not None and self.leader.leader_epoch == v.leader_epoch:
                self.leader.apply_isr(v.isr, v.epoch)
                self._after_leader_change(now)
                return
            self._become_leader(now, now_ns, v)
        else:
            if self.follower is not None and self.follower.leader_epoch == v.leader_epoch:
                return
            self._become_follower(now, now_ns, v)

    def _step_down(self) -> None:
        if self.leader is not None:
            self.hw = self.leader.high_watermark
            self.acks.drain()
        elif self.follower is not None:
            self.hw = self.follower.high_watermark
        self.leader = None
        self.follower = None

    def _become_leader(self, now: int, now_ns: int, v: PartitionView) -> None:
        self._step_down()
        p = self.sim.params
        self.log.epochs.assign(v.leader_epoch, self.log.leo)
        self.leader = self.sim.leader_factory(
            self.node_id, v.leader_epoch, v.replicas, v.isr, self.sim.min_isr,
            p.lag_ticks * p.tick_ns, now_ns, self.log.leo,
            hw=self.hw, partition_epoch=v.epoch,
            proposal_retry_ns=p.proposal_retry_ticks * p.tick_ns,
        )
        self.sim.checker.on_new_leader(now, self.node_id, self.log)
        self.sim.leader_changes += 1
        self.sim.event(now, f"{self.node_id} leads epoch {v.leader_epoch} LEO {self.log.leo} "
                            f"HW {self.hw} ISR {v.isr}")
        self._after_leader_change(now)

    def _become_follower(self, now: int, now_ns: int, v: PartitionView) -> None:
        self._step_down()
        p = self.sim.params
        self.follower = self.sim.follower_factory(
            self.node_id, v.leader, v.leader_epoch, self.log.leo, self.hw, now_ns,
            idle_wait_ns_max=p.idle_wait_ticks * p.tick_ns,
            idle_jitter_ns_max=p.idle_jitter_ticks * p.tick_ns,
        )
        self._reset_loop(now)

    # -- leader side --

    def publish(self, now: int, payload: bytes, policy: AckPolicy) -> None:
        leader = self.leader
        assert leader is not None
        offset = self.log.leo
        self.log.append([(leader.leader_epoch, payload)])
        if self.sim.faults.sync_every_ticks == 0:
            self.log.sync(self.hw)
        for r in leader.on_local_append(self.log.leo):
            self.send(r, Notify(leader.leader_epoch))
        self.acks.add(policy, [offset], [(offset, payload)])
        self._after_leader_change(now)
        self._release_leader_acks(now)

    def _release_leader_acks(self, now: int) -> None:
        durable = self.log.synced - 1
        for offset, payload in self.acks.release_leader(durable):
            self.sim.checker.leader_acked.append((offset, payload, self.leader.leader_epoch))
            self.sim.acked[payload] = now

    def _after_leader_change(self, now: int) -> None:
        """Record commits and release ALL acks after anything that may move the HW."""
        leader = self.leader
        assert leader is not None
        hw = leader.high_watermark
        if hw > self.hw:
            for o in range(self.hw + 1, hw + 1):
                self.sim.checker.on_commit(now, self.node_id, o, self.log.entries[o])
            self.hw = hw
            for offset, payload in self.acks.release(hw):
                self.sim.checker.on_all_ack(now, self.node_id, offset, payload)
                self.sim.acked[payload] = now

    def _on_fetch_request(self, now: int, src: str, req: FetchRequest) -> None:
        leader = self.leader
        if leader is None:
            return
        now_ns = now * self.sim.params.tick_ns
        verdict = leader.on_fetch(req.replica_id, req.fetch_offset, now_ns, req.leader_epoch)
        if verdict is FetchVerdict.OK:
            self._after_leader_change(now)
            end = min(self.log.leo, req.fetch_offset + self.sim.params.fetch_batch_max)
            entries = tuple(self.log.entries[req.fetch_offset : end])
            if entries:
                resp = FetchResponse(leader.leader_epoch, leader.high_watermark, True,
                                     req.fetch_offset, end - 1)
            else:
                resp = FetchResponse(leader.leader_epoch, leader.high_watermark)
            self.send(src, DataResponse(resp, entries))
        elif verdict is not FetchVerdict.STALE_EPOCH:
            self.send(src, DataResponse(
                FetchResponse(leader.leader_epoch, leader.high_watermark, error=verdict), ()))

    # -- follower side --

    def _follower_tick(self, now: int, now_ns: int) -> None:
        f = self.follower
        assert f is not None
        p = self.sim.params
        if f.phase is Phase.TRUNCATING:
            if self.epoch_req_at is None or now - self.epoch_req_at >= p.fetch_timeout_ticks:
                self.epoch_req_at = now
                self.send(f.leader_id, f.epoch_request(self.log.epochs.latest_epoch))
        else:
            if self.inflight_at is not None and now - self.inflight_at >= p.fetch_timeout_ticks:
                self.inflight_at = None
                self.next_fetch_at = now
            if self.inflight_at is None and (now >= self.next_fetch_at or self.notified):
                self.inflight_at = now
                self.notified = False
                self.send(f.leader_id, f.next_fetch())
        if (
            f.leader_silent(now_ns, p.leader_timeout_ticks * p.tick_ns)
            and now - self.last_report >= p.report_every_ticks
        ):
            self.last_report = now
            self.sim.stats["reports"] += 1
            self.send(self.ctl_dest(), LeaderReport(STREAM, PARTITION, self.node_id, f.leader_id,
                                        f.leader_epoch))

    def _on_epoch_response(self, now: int, resp: EpochResponse) -> None:
        f = self.follower
        if f is None:
            return
        t: Truncation | None = f.truncation_point(
            resp, self.log.epochs, unclean_ok=self.sim.faults.sync_every_ticks > 0
        )
        if t is None:
            return
        if t.offset < self.log.leo:
            self.sim.stats["truncated_entries"] += self.log.leo - t.offset
        self.log.truncate(t.offset)
        self.sim.checker.on_truncate(self.node_id, t.offset)
        if t.below_hw:
            self.sim.stats["unclean_truncations"] += 1
            self.sim.checker.reset_node(self.node_id, self.incarnation, f.high_watermark)
        self.hw = f.high_watermark
        self.epoch_req_at = None
        self.next_fetch_at = now

    def _on_data(self, now: int, msg: DataResponse) -> None:
        f = self.follower
        if f is None:
            return
        out = f.on_fetch_response(msg.resp, now * self.sim.params.tick_ns)
        if out.kind is OutcomeKind.DROPPED:
            self.sim.stats["dropped_responses"] += 1
            return
        self.inflight_at = None
        if out.kind is OutcomeKind.RETRUNCATE:
            self.epoch_req_at = None
            return
        if out.append:
            assert self.log.leo == msg.resp.first_offset
            self.log.append(msg.entries)
            assert self.log.leo == out.leo, (self.log.leo, out.leo)
            if self.sim.faults.sync_every_ticks == 0:
                self.log.sync(self.hw)
        self.hw = out.hw
        p = self.sim.params
        delay_ns = f.next_fetch_delay_ns(out.caught_up, self.notified, self.sim.rng)
        self.next_fetch_at = now + delay_ns // p.tick_ns
        if delay_ns == 0:
            self.notified = False

    def current_hw(self) -> int:
        if self.leader is not None:
            return self.leader.high_watermark
        if self.follower is not None:
            return self.follower.high_watermark
        return self.hw


# ----- the controller ------------------------------------------------------------------


class ControllerHost:
    """The metadata leader: the FSM, the failure tracker, conditional ISR changes."""

    node_id = CTL

    def __init__(self, sim: ReplSim, replicas: tuple[str, ...]) -> None:
        self.sim = sim
        self.replicas = replicas
        self.fsm = MetadataFSM()
        self.index = 0
        self._apply(create_stream_op(
            name=STREAM, subject=STREAM, placements=[Placement(PARTITION, replicas, replicas[0])],
            creation_timestamp_ns=0, replication_factor=len(replicas),
        ))
        p = sim.params
        self.tracker = LeaderFailureTracker(p.leader_timeout_ticks * p.tick_ns)
        self.hello_seen: dict[str, int] = {}
        self._outbox: list[tuple[str, Msg]] = []
        self.rejected = 0

    def _apply(self, op: object) -> bool:
        self.index += 1
        res = self.fsm.apply(op, self.index)  # type: ignore[arg-type]
        return res.ok

    def view(self) -> PartitionView:
        p = self.fsm.state.partition(STREAM, PARTITION)
        assert p is not None
        return PartitionView(p.leader, p.leader_epoch, p.isr, p.epoch, p.replicas)

    def is_up(self) -> bool:
        return True

    def broadcast(self) -> None:
        msg = StateMsg(self.view())
        for r in self.replicas:
            self._outbox.append((r, msg))

    def receive(self, now: int, src: str, msg: Msg) -> None:
        before = self.view()
        if isinstance(msg, IsrChange):
            if (msg.leader, msg.leader_epoch, msg.partition_epoch) != (
                before.leader, before.leader_epoch, before.epoch
            ):
                self.rejected += 1
                self._outbox.append((src, StateMsg(before)))
                return
            build = shrink_isr_op if msg.kind is IsrChangeKind.SHRINK else expand_isr_op
            self._apply(build(STREAM, PARTITION, msg.replica, msg.leader, msg.leader_epoch))
            self.sim.stats["isr_changes"] += 1
        elif isinstance(msg, LeaderReport):
            try:
                op = self.tracker.report(self.fsm.state, msg, now * self.sim.params.tick_ns)
            except MetadataError:
                op = None
            if op is not None:
                self._apply(op)
                self.sim.stats["elections"] += 1
        elif isinstance(msg, Hello):
            if msg.incarnation > self.hello_seen.get(msg.node, 0):
                self.hello_seen[msg.node] = msg.incarnation
                if before.leader == msg.node:
                    others = [r for r in before.isr if r != msg.node]
                    state = self.fsm.state
                    new = select_leader(others, state.leader_load()) if others else msg.node
                    self._apply(change_leader_op(STREAM, PARTITION, new, before.leader,
                                                 before.leader_epoch))
                    self.sim.stats["restart_elections"] += 1
            v = self.view()
            self._outbox.append((src, StateMsg(v, (msg.node, msg.incarnation, v.leader_epoch))))
        else:
            raise AssertionError(f"unexpected message {msg!r}")
        if self.view() != before:
            self.sim.event(now, f"ctl: {self.view()}")
            self.broadcast()

    def on_tick(self, now: int) -> list[tuple[str, Msg]]:
        if now % self.sim.params.ctl_broadcast_ticks == 0:
            self.tracker.expire(now * self.sim.params.tick_ns)
            self.broadcast()
        out, self._outbox = self._outbox, []
        return out


# ----- the simulation ------------------------------------------------------------------


@dataclass
class SimResult:
    seed: int
    replicas: int
    ticks: int
    bug: str
    violations: list[str]
    trace_hash: str
    stats: dict[str, int]
    liveness_ticks: int
    """Ticks the liveness phase needed (-1 if it failed)."""
    events: list[str] = field(default_factory=list)
    raft_controller: bool = False

    @property
    def ok(self) -> bool:
        return not self.violations

    def replay_command(self) -> str:
        cmd = f"python tools/simulate_repl.py --seed {self.seed} --replicas {self.replicas}"
        cmd += f" --ticks {self.ticks}"
        if self.raft_controller:
            cmd += " --raft-controller"
        return cmd + (f" --bug {self.bug}" if self.bug else "") + " --verbose"


class ReplSim:
    """A simulated partition. Use :func:`run_seed` unless a test needs to steer it."""

    def __init__(
        self,
        seed: int,
        replicas: int = 3,
        faults: ReplFaults | None = None,
        params: ReplParams | None = None,
        bug: str = "",
        verbose: bool = False,
        raft_controller: bool = False,
    ) -> None:
        assert replicas >= 1
        self.raft_controller = raft_controller
        self.seed = seed
        self.rng = random.Random(seed)
        self.params = params or ReplParams()
        self.faults = faults or ReplFaults.draw(self.rng)
        self.min_isr = self.params.min_isr or self.rng.randint(1, replicas // 2 + 1)
        self.bug = bug
        self.leader_factory, self.follower_factory = BUGS[bug]
        self.verbose = verbose
        self.events: list[str] = []
        self.net: SimNetwork[Msg] = SimNetwork(self.rng, self.faults.net)
        self.world: SimWorld[Msg] = SimWorld(self.net)
        self.checker = ReplChecker()
        self.stats: dict[str, int] = {
            k: 0 for k in ("published", "reports", "isr_changes", "elections",
                           "restart_elections", "truncated_entries", "unclean_truncations",
                           "dropped_responses", "partitions")
        }
        self.leader_changes = 0
        self.acked: dict[bytes, int] = {}
        self._seq = 0
        self._trace = hashlib.blake2b(digest_size=16)
        ids = tuple(f"r{i}" for i in range(replicas))
        self.ids = ids
        self.ctl_ids: tuple[str, ...] = CTL_IDS if raft_controller else (CTL,)
        self.hosts: dict[str, ReplHost] = {i: ReplHost(self, i) for i in ids}
        for h in self.hosts.values():
            self.world.add(h)
        self.raft_ctl: RaftController | None = None
        if raft_controller:
            # The stream is created through Raft; replicas learn it from a controller node.
            self.raft_ctl = RaftController(self, CTL_IDS)
            self.ctl: ControllerHost | RaftController = self.raft_ctl
            for n in self.raft_ctl.nodes.values():
                self.world.add(n)
        else:
            self.ctl = classic = ControllerHost(self, ids)
            self.world.add(classic)
            first = StateMsg(classic.view())
            for h in self.hosts.values():
                h.receive(0, CTL, first)

    # -- helpers --

    def event(self, now: int, text: str) -> None:
        if self.verbose or len(self.events) < 400:
            self.events.append(f"t={now} {text}")

    def acting_leaders(self) -> list[ReplHost]:
        return [h for h in self.hosts.values() if h.up and h.leader is not None]

    def publish(self, now: int, policy: AckPolicy) -> bytes:
        self._seq += 1
        payload = b"m%d" % self._seq
        self.stats["published"] += 1
        for h in self.acting_leaders():  # NATS delivers to every subscribed "leader"
            h.publish(now, payload, policy)
        return payload

    def _faults_tick(self, now: int) -> None:
        f = self.faults
        rng = self.rng
        if f.crash_prob:
            for h in self.hosts.values():
                if h.up and rng.random() < f.crash_prob:
                    h.crash(now, rng.randint(1, f.down_ticks_max))
        if f.partition_prob and not self.net.is_partitioned() and rng.random() < f.partition_prob:
            nodes = [*self.ids, *self.ctl_ids]
            rng.shuffle(nodes)
            cut = 1 if rng.random() < 0.5 else rng.randint(1, len(nodes) - 1)  # often isolate one
            self.net.partition([nodes[:cut], nodes[cut:]])
            self.stats["partitions"] += 1
            self.event(now, f"partition {nodes[:cut]} | {nodes[cut:]}")
        elif self.net.is_partitioned() and rng.random() < f.heal_prob:
            self.net.heal()
            self.event(now, "heal")

    def _check_tick(self, now: int) -> None:
        for nid, h in self.hosts.items():
            if h.up:
                self.checker.observe(now, nid, h.incarnation, h.log, h.current_hw())

    def _trace_tick(self, now: int) -> None:
        parts = []
        for nid, h in self.hosts.items():
            role = "L" if h.leader else "F" if h.follower else ("-" if h.up else "x")
            epoch = h.view.leader_epoch if h.view else 0
            parts.append(f"{nid}:{role}{epoch}/{h.log.leo}/{h.current_hw()}")
        if self.raft_ctl is not None:
            parts.append(self.raft_ctl.trace())
        self._trace.update(f"{now}|{'|'.join(parts)}|{self.net.stats.sent}\n".encode())

    def _step(self, publish: bool) -> None:
        self.world.run_tick()
        now = self.world.now
        if publish and self.rng.random() < self.params.publish_prob:
            all_ = self.rng.random() < self.params.all_ratio
            self.publish(now, AckPolicy.ALL if all_ else AckPolicy.LEADER)
        self._check_tick(now)
        if now % 10 == 0:
            self._trace_tick(now)

    # -- the run --

    def run(self, ticks: int) -> SimResult:
        liveness = -1
        try:
            for _ in range(ticks):
                self._step(publish=True)
                self._faults_tick(self.world.now)
            liveness = self._liveness()
            self._final_checks()
            if self.raft_ctl is not None:
                self.raft_ctl.checker.check_log_matching(self.world.now,
                                                         self.raft_ctl.live_nodes())
        except AssertionError:
            self.checker.add(f"t={self.world.now}: assertion failed:\n{traceback.format_exc()}")
        except Exception:  # any crash of a core is a finding, not a simulator error
            self.checker.add(f"t={self.world.now}: exception:\n{traceback.format_exc()}")
        stats = dict(self.stats)
        final_view = self.ctl.view()
        stats.update(
            crashes=sum(h.crashes for h in self.hosts.values()),
            leader_changes=self.leader_changes,
            leader_epoch=final_view.leader_epoch if final_view is not None else 0,
            committed=len(self.checker.committed),
            all_acked=len(self.checker.all_acked),
            leader_acked=len(self.checker.leader_acked),
            leader_acked_lost=self.leader_acked_lost,
            tainted=len(self.checker.tainted),
            excused=self.checker.excused,
            ctl_rejected=self.ctl.rejected,
            net_sent=self.net.stats.sent,
            net_dropped=self.net.stats.dropped,
            net_cut=self.net.stats.cut,
            min_isr=self.min_isr,
            sync_every_ticks=self.faults.sync_every_ticks,
        )
        violations = list(self.checker.violations)
        if self.raft_ctl is not None:
            rc = self.raft_ctl
            stats.update({f"ctl_{k}": v for k, v in rc.stats.items()})
            stats.update(ctl_crashes=rc.crashes(), ctl_terms=max(
                (n.term for n in rc.live_nodes().values()), default=0))
            violations += [f"[controller raft] {v}" for v in rc.checker.violations]
        self._trace.update(repr(sorted(stats.items())).encode())
        return SimResult(
            seed=self.seed, replicas=len(self.ids), ticks=ticks, bug=self.bug,
            violations=violations, trace_hash=self._trace.hexdigest(),
            stats=stats, liveness_ticks=liveness, events=self.events,
            raft_controller=self.raft_controller,
        )

    leader_acked_lost = 0

    def _liveness(self) -> int:
        """Heal, restart everyone, then require an ALL publish to be acked."""
        start = self.world.now
        self.net.heal()
        self.net.faults = NetFaults()
        for h in self.hosts.values():
            if not h.up:
                h.restart_at = start
        if self.raft_ctl is not None:
            self.raft_ctl.heal_all(start)
        self.event(start, "liveness phase")
        marker: bytes | None = None
        published_epoch = -1
        for _ in range(self.params.liveness_ticks_max):
            self._step(publish=False)
            now = self.world.now
            view = self.ctl.view()
            if view is None:
                continue
            leader = self.hosts[view.leader]
            core = leader.leader
            if not (leader.up and core is not None and core.leader_epoch == view.leader_epoch):
                continue
            if marker is None or published_epoch != view.leader_epoch:
                marker = self.publish(now, AckPolicy.ALL)
                published_epoch = view.leader_epoch
            elif marker in self.acked:
                return now - start
        self.checker.add(
            f"liveness: no ALL ack within {self.params.liveness_ticks_max} ticks after healing "
            f"(controller: {self.ctl.view()})"
        )
        return -1

    def _final_checks(self) -> None:
        c = self.checker
        view = self.ctl.view()
        assert view is not None
        now = self.world.now
        for o, payload in sorted(c.all_acked.items()):
            if o in c.tainted:
                continue
            for r in view.isr:
                h = self.hosts[r]
                if not h.up:
                    continue
                if o >= h.log.leo or h.log.entries[o][1] != payload:
                    c.add(f"end t={now}: ALL-acked {payload!r}@{o} missing on ISR member {r} "
                          f"(has {h.log.entries[o] if o < h.log.leo else None})")
                    return
        final = self.hosts[view.leader].log
        for o, payload, epoch in c.leader_acked:
            if o < final.leo and final.entries[o][1] == payload:
                continue
            if epoch < view.leader_epoch or o in c.tainted:
                self.leader_acked_lost += 1
            else:
                c.add(f"end t={now}: LEADER-acked {payload!r}@{o} (epoch {epoch}) lost "
                      f"without a leader change")


class _FollowerNoTruncate(FollowerState):
    """Broken on purpose: never cuts its log on a leader change (no epoch reconciliation)."""

    def truncation_point(self, resp, local_epochs, *, unclean_ok=False):  # type: ignore[no-untyped-def]
        leo = self.leo
        t = super().truncation_point(resp, local_epochs, unclean_ok=True)
        if t is None:
            return None
        self._leo = leo
        self._hw = max(self._hw, UNDEFINED)
        self.phase = Phase.FETCHING
        return Truncation(leo, True)


class _LeaderHwIgnoresIsr(LeaderState):
    """Broken on purpose: commits as soon as the leader itself has the message."""

    def _update_hw(self) -> None:
        if self._leo - 1 > self._hw:
            self._hw = self._leo - 1


class _LeaderLateExpand(LeaderState):
    """Broken on purpose: counts an added replica for the HW only once the controller's ISR
    has it (not from the proposal on), so the controller may elect a replica that misses
    offsets committed in between."""

    def _recount(self) -> None:
        self._counted = tuple(r for r in self._isr if r != self.leader_id)


BUGS: dict[str, tuple[LeaderFactory, FollowerFactory]] = {
    "": (LeaderState, FollowerState),
    "follower_no_truncate": (LeaderState, _FollowerNoTruncate),
    "leader_hw_ignores_isr": (_LeaderHwIgnoresIsr, FollowerState),
    "leader_late_expand": (_LeaderLateExpand, FollowerState),
}
"""Deliberately broken variants, to show the checkers catch real bugs."""


def run_seed(
    seed: int,
    replicas: int = 3,
    ticks: int = 600,
    faults: ReplFaults | None = None,
    params: ReplParams | None = None,
    bug: str = "",
    verbose: bool = False,
    raft_controller: bool = False,
) -> SimResult:
    """Run one deterministic simulation. Same arguments, same ``trace_hash``.

    ``raft_controller``: the controller is a 3-node Raft group (:mod:`lb.testing.repl_raft`)
    on the same network and clock, instead of one in-process state machine."""
    return ReplSim(seed, replicas, faults, params, bug, verbose, raft_controller).run(ticks)
