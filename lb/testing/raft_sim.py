"""Deterministic simulation of a Raft cluster on :mod:`lb.testing.simnet`.

Each node is a :class:`~lb.raft.RaftNode` with a simulated driver that follows the Ready
contract against a per-node :class:`SimDisk` (what survives a crash), and a trivial state
machine (a hash chain and list of applied payloads). Faults are drawn from the seed: message
drop, delay, duplication and reordering, partitions and isolation, crashes at two points of the
driver loop (after receiving input but before persisting; after persisting but before sending),
and membership changes. Every run ends with a liveness phase: all faults heal, a leader must be
elected and a new proposal must be applied on every live member within a bounded number of
ticks.

``run_seed(seed)`` is a pure function of its arguments; ``SimResult.trace_hash`` proves it.
"""

from __future__ import annotations

import hashlib
import json
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from lb.raft import (
    ClusterConflict,
    ConfChange,
    ConfChangeKind,
    Entry,
    EntryKind,
    HardState,
    Message,
    RaftConfig,
    RaftError,
    RaftNode,
    Role,
    Snapshot,
    join_change,
)

from .checkers import RaftChecker
from .simnet import NetFaults, SimNetwork, SimWorld


@dataclass
class SimFaults:
    """Fault rates for the fault phase. Probabilities are per tick (per node for crashes)."""

    net: NetFaults = field(default_factory=NetFaults)
    crash_prob: float = 0.0
    down_ticks_max: int = 60
    partition_prob: float = 0.0
    heal_prob: float = 0.05

    @staticmethod
    def draw(rng: random.Random) -> SimFaults:
        """A random fault profile (calm ones included, so some seeds test progress)."""
        calm = rng.random() < 0.2
        if calm:
            return SimFaults(net=NetFaults(0.0, 0.0, 1, rng.randint(1, 2)))
        return SimFaults(
            net=NetFaults(
                drop_prob=rng.choice([0.0, 0.02, 0.05, 0.15]),
                dup_prob=rng.choice([0.0, 0.02, 0.1]),
                delay_ticks_min=1,
                delay_ticks_max=rng.choice([1, 2, 4, 8]),
            ),
            crash_prob=rng.choice([0.0, 0.001, 0.004]),
            down_ticks_max=rng.choice([20, 60, 150]),
            partition_prob=rng.choice([0.0, 0.003, 0.01]),
            heal_prob=rng.choice([0.01, 0.05]),
        )


@dataclass
class SimDisk:
    """What a node has durably persisted (the only state that survives a crash)."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot = field(default_factory=Snapshot)
    entries: list[Entry] = field(default_factory=list)

    def persist(
        self, snapshot: Snapshot | None, entries: list[Entry], hs: HardState | None
    ) -> None:
        if snapshot is not None:
            self.snapshot = snapshot
            self.entries = []
        if entries:
            first = entries[0].index
            if self.entries:
                base = self.entries[0].index
                assert first <= self.entries[-1].index + 1, "gap in stored log"
                del self.entries[max(0, first - base) :]
            self.entries.extend(entries)
        if hs is not None:
            self.hard_state = hs

    def save_snapshot(self, snapshot: Snapshot, first_index: int) -> None:
        self.snapshot = snapshot
        if self.entries and self.entries[0].index < first_index:
            del self.entries[: first_index - self.entries[0].index]


@dataclass
class AppState:
    """The trivial state machine: applied index, a hash chain, and the applied payloads."""

    index: int = 0
    digest: bytes = b""
    payloads: list[bytes] = field(default_factory=list)

    def encode(self) -> bytes:
        return json.dumps(
            [self.index, self.digest.hex(), [p.hex() for p in self.payloads]]
        ).encode()

    @staticmethod
    def decode(data: bytes) -> AppState:
        index, digest, payloads = json.loads(data)
        return AppState(index, bytes.fromhex(digest), [bytes.fromhex(p) for p in payloads])


@dataclass
class SimParams:
    election_timeout_ticks: int = 10
    heartbeat_ticks: int = 3
    snapshot_threshold: int = 40
    compaction_trailing_entries: int = 8
    inflight_msgs_max: int = 4
    append_bytes_max: int = 96
    propose_prob: float = 0.2
    liveness_ticks_max: int = 600
    probe_every_ticks: int = 50
    """Each live node broadcasts ``cluster_probe()`` this often (two-seed detection)."""

    @staticmethod
    def draw(rng: random.Random) -> SimParams:
        """Vary flow control and snapshot knobs between seeds."""
        return SimParams(
            snapshot_threshold=rng.choice([15, 40, 100]),
            compaction_trailing_entries=rng.choice([0, 8, 50]),
            inflight_msgs_max=rng.choice([1, 4, 64]),
            append_bytes_max=rng.choice([1, 96, 4096]),
        )


class RaftHost:
    """A RaftNode plus its simulated driver, disk and state machine."""

    def __init__(self, sim: RaftSim, node_id: str, make: Callable[[RaftConfig], RaftNode]) -> None:
        self.sim = sim
        self.node_id = node_id
        self.disk = SimDisk()
        self.app = AppState()
        self.node: RaftNode | None = None
        self.restart_at = 0
        self.crashes = 0
        self._make = make
        self.node = make(self._config())
        self._last_snapshot_index = 0

    def _config(self) -> RaftConfig:
        p = self.sim.params
        return RaftConfig(
            id=self.node_id,
            rng=random.Random(self.sim.rng.getrandbits(64)),
            election_timeout_ticks=p.election_timeout_ticks,
            heartbeat_ticks=p.heartbeat_ticks,
            inflight_msgs_max=p.inflight_msgs_max,
            append_bytes_max=p.append_bytes_max,
            uncommitted_entries_max=256,
            compaction_trailing_entries=p.compaction_trailing_entries,
        )

    def is_up(self) -> bool:
        return self.node is not None

    # -- crash / restart ------------------------------------------------------------

    def crash(self, now: int, why: str) -> None:
        assert self.node is not None
        self.node = None
        self.app = AppState()
        self.crashes += 1
        for checker in self.sim.checkers.values():
            checker.forget(self.node_id)
        self.restart_at = now + 1 + self.sim.rng.randrange(self.sim.faults.down_ticks_max)
        self.sim.event(now, f"crash {self.node_id} {why}")

    def restart(self, now: int) -> None:
        d = self.disk
        cfg = self._config()
        if d.hard_state == HardState() and not d.entries and not d.snapshot.index:
            # Nothing reached the disk: like the real driver, bootstrap (or join) afresh.
            self.node = self._make(cfg)
            self._last_snapshot_index = 0
            self.sim.event(now, f"restart {self.node_id} (empty disk)")
            return
        self.node = self.sim.restart_factory(cfg, d.hard_state, d.snapshot, list(d.entries))
        if d.snapshot.index:
            self.app = AppState.decode(d.snapshot.data)
            checker = self.sim.checker_for(self.node)
            checker.on_restore(now, self.node_id, self.app.index, self.app.digest)
        self._last_snapshot_index = d.snapshot.index
        self.sim.event(now, f"restart {self.node_id}")

    # -- SimHost --------------------------------------------------------------------

    def receive(self, now: int, src: str, msg: Message) -> None:
        node = self.node
        assert node is not None
        node.step(msg)
        self.sim.checker_for(node).observe(now, node)

    def on_tick(self, now: int) -> list[tuple[str, Message]]:
        if self.node is None:
            if now >= self.restart_at and not self.sim.hold_down.get(self.node_id):
                self.restart(now)
            return []
        self.node.tick()
        self.sim.checker_for(self.node).observe(now, self.node)
        return self.process(now)

    def process(self, now: int) -> list[tuple[str, Message]]:
        """One turn of the driver loop: persist, send, apply, advance (one Ready per tick)."""
        node = self.node
        assert node is not None
        rd = node.ready()
        if rd is None:
            return []
        sim = self.sim
        if sim.crash_point(now):
            self.crash(now, "before persist")
            return []
        old_commit = self.disk.hard_state.commit
        self.disk.persist(rd.snapshot, rd.entries, rd.hard_state)
        if rd.hard_state is not None:
            checker = sim.checker_for(node)
            checker.on_hard_state(now, self.node_id, rd.hard_state)
            if rd.hard_state.commit > old_commit:
                checker.on_commit_persisted(now, node, old_commit, rd.hard_state.commit)
        if rd.messages and sim.crash_point(now):
            self.crash(now, "after persist, before send")
            return []
        out = [(m.to, m) for m in rd.messages]
        sim.stats["msgs"] += len(out)
        checker = sim.checker_for(node)
        if rd.snapshot is not None:
            self.app = AppState.decode(rd.snapshot.data)
            checker.on_restore(now, self.node_id, self.app.index, self.app.digest)
            self._last_snapshot_index = rd.snapshot.index
        app = self.app
        for e in rd.committed_entries:
            app.digest = checker.on_apply(now, self.node_id, app.index, app.digest, e)
            app.index = e.index
            if e.kind is EntryKind.NORMAL:
                app.payloads.append(e.data)
                sim.applied_payloads[e.data] = sim.applied_payloads.get(e.data, 0) + 1
        if rd.cluster_conflicts:
            sim.conflicts.setdefault(self.node_id, []).extend(rd.cluster_conflicts)
            sim.event(now, f"{self.node_id} detects {rd.cluster_conflicts}")
        node.advance(rd)
        if app.index - self._last_snapshot_index >= sim.params.snapshot_threshold:
            snap = node.compact(app.index, app.encode())
            self.disk.save_snapshot(snap, node.first_index())
            self._last_snapshot_index = snap.index
            sim.stats["snapshots_taken"] += 1
        for m in rd.messages:
            if m.snapshot is not None:
                sim.stats["snapshots_sent"] += 1
        return out


@dataclass
class SimResult:
    seed: int
    nodes: int
    ticks: int
    mode: str
    violations: list[str]
    trace_hash: str
    stats: dict[str, int]
    liveness_ticks: int
    """Ticks the liveness phase needed (-1 if it failed)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def replay_command(self) -> str:
        return (
            f"python tools/simulate.py --seed {self.seed} --nodes {self.nodes} --ticks {self.ticks}"
        )


MODES = ("peers", "seed_join", "peers_change", "two_seeds")
"""peers: bootstrap.peers; seed_join: n0 seeds, the rest join (voters up to a max quorum size,
then learners); peers_change: n0..n(k-2) peers, the last joins as learner, is promoted, then a
random voter is removed; two_seeds: n0 and n1 both seed (misconfiguration) and must detect it."""


class RaftSim:
    """A whole simulated cluster. Use :func:`run_seed` unless a test needs to steer it."""

    def __init__(
        self,
        seed: int,
        nodes: int = 3,
        faults: SimFaults | None = None,
        params: SimParams | None = None,
        mode: str | None = None,
        node_hook: Callable[[RaftNode], None] | None = None,
        verbose: bool = False,
    ) -> None:
        assert nodes >= 1
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or SimFaults.draw(self.rng)
        self.params = params or SimParams.draw(self.rng)
        self.net: SimNetwork[Message] = SimNetwork(self.rng, self.faults.net)
        self.world: SimWorld[Message] = SimWorld(self.net)
        self.checker = RaftChecker()
        self.checkers: dict[str, RaftChecker] = {"": self.checker}
        self.verbose = verbose
        self.node_hook = node_hook
        self._trace = hashlib.blake2b(digest_size=16)
        self.stats: dict[str, int] = {
            "msgs": 0,
            "snapshots_sent": 0,
            "snapshots_taken": 0,
            "proposals": 0,
            "conf_changes": 0,
            "partitions": 0,
            "transfers": 0,
        }
        self.applied_payloads: dict[bytes, int] = {}
        self.conflicts: dict[str, list[ClusterConflict]] = {}
        self.hold_down: dict[str, bool] = {}
        self.ids = [f"n{i}" for i in range(nodes)]
        self.mode = mode or self.rng.choice(["peers", "peers", "seed_join", "peers_change"])
        assert self.mode in MODES, self.mode
        self.quorum_size_max = 0
        if self.mode == "seed_join" and nodes >= 4 and self.rng.random() < 0.5:
            self.quorum_size_max = 3
        self.removal_done = False
        self._proposal_seq = 0
        self._last_lead: tuple[str, int] | None = None
        self.hosts: dict[str, RaftHost] = {}
        for i, nid in enumerate(self.ids):
            host = RaftHost(self, nid, self._maker(i, nid))
            self.hosts[nid] = host
            self.world.add(host)

    def checker_for(self, node: RaftNode | None) -> RaftChecker:
        """One checker per cluster: only the two-seeds mode has more than one cluster."""
        if self.mode != "two_seeds" or node is None:
            return self.checker
        checker = self.checkers.get(node.cluster_id)
        if checker is None:
            checker = self.checkers[node.cluster_id] = RaftChecker()
        return checker

    def all_violations(self) -> list[str]:
        out = list(self.checker.violations)
        for cid, checker in self.checkers.items():
            if checker is not self.checker:
                out.extend(f"[cluster {cid}] {v}" for v in checker.violations)
        return out

    def _hooked(self, node: RaftNode) -> RaftNode:
        if self.node_hook is not None:
            self.node_hook(node)
        return node

    def restart_factory(
        self, cfg: RaftConfig, hs: HardState, snap: Snapshot, entries: list[Entry]
    ) -> RaftNode:
        return self._hooked(RaftNode.restart(cfg, hs, snap, entries))

    def _maker(self, i: int, nid: str) -> Callable[[RaftConfig], RaftNode]:
        def make(cfg: RaftConfig) -> RaftNode:
            if self.mode == "peers" or len(self.ids) == 1:
                return self._hooked(RaftNode.bootstrap_peers(cfg, self.ids))
            if self.mode == "peers_change":
                initial = self.ids[:-1]
                if nid in initial:
                    return self._hooked(RaftNode.bootstrap_peers(cfg, initial))
                return self._hooked(RaftNode.join(cfg))
            if i == 0 or (self.mode == "two_seeds" and i == 1):
                cid = f"seed-{self.seed}-{nid}" if self.mode == "two_seeds" else f"seed-{self.seed}"
                return self._hooked(RaftNode.bootstrap_seed(cfg, cluster_id=cid))
            return self._hooked(RaftNode.join(cfg))

        return make

    # -- helpers ---------------------------------------------------------------------

    def event(self, now: int, text: str) -> None:
        self._trace.update(f"{now} {text}\n".encode())
        if self.verbose:
            print(f"[{now:5d}] {text}")

    def crash_point(self, now: int) -> bool:
        p = self.faults.crash_prob
        return bool(p) and not self.calm and self.rng.random() < p

    def live_nodes(self) -> dict[str, RaftNode]:
        return {h.node_id: h.node for h in self.hosts.values() if h.node is not None}

    def leader(self) -> RaftNode | None:
        best = None
        for host in self.hosts.values():
            node = host.node
            if (
                node is not None
                and node.role is Role.LEADER
                and (best is None or node.term > best.term)
            ):
                best = node
        return best

    def propose(self, now: int, data: bytes) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        try:
            leader.propose(data)
        except RaftError:
            return False
        self.stats["proposals"] += 1
        self.checker_for(leader).observe(now, leader)
        return True

    def _conf_change(self, now: int, leader: RaftNode, cc: ConfChange) -> None:
        try:
            leader.propose_conf_change(cc)
        except RaftError:
            return
        self.stats["conf_changes"] += 1
        self.event(now, f"conf change {cc.kind.name} {cc.node_id} via {leader.id}")
        self.checker_for(leader).observe(now, leader)

    def _membership(self, now: int, ticks: int) -> None:
        leader = self.leader()
        if leader is None or now % 7:
            return
        cs = leader.conf
        if self.mode in ("seed_join", "two_seeds"):
            for nid in self.ids:
                cc = join_change(cs, nid, self.quorum_size_max)
                if cc is not None and nid not in cs.members():
                    self._conf_change(now, leader, cc)
                    return
        elif self.mode == "peers_change":
            joiner = self.ids[-1]
            if joiner not in cs.members():
                self._conf_change(now, leader, ConfChange(ConfChangeKind.ADD_LEARNER, joiner))
            elif joiner in cs.learners and now > ticks // 4:
                self._conf_change(now, leader, ConfChange(ConfChangeKind.ADD_VOTER, joiner))
            elif joiner in cs.voters and now > ticks // 2 and not self.removal_done:
                victim = self.ids[self.rng.randrange(len(self.ids))]
                if victim in cs.voters and len(cs.voters) > 2:
                    self.removal_done = True
                    self._conf_change(now, leader, ConfChange(ConfChangeKind.REMOVE_NODE, victim))

    def _probe(self, now: int) -> None:
        """Every live node announces its cluster id to everyone (the driver's NATS broadcast)."""
        for nid, node in self.live_nodes().items():
            probe = node.cluster_probe()
            for other in self.ids:
                if other != nid:
                    self.net.send(now, nid, other, probe)

    def _two_seeds_detected(self) -> bool:
        seeds = self.ids[:2]
        return all(self.conflicts.get(s) for s in seeds)

    def _check_two_seeds(self) -> None:
        for s in self.ids[:2]:
            if not self.conflicts.get(s):
                self.checker.add_violation(f"two seeds: {s} never detected the other cluster")

    def _faults_tick(self, now: int) -> None:
        f, rng = self.faults, self.rng
        if rng.random() < 0.003:  # graceful-shutdown style leadership transfer
            leader = self.leader()
            if leader is not None:
                try:
                    target = leader.transfer_leadership()
                except RaftError:
                    pass
                else:
                    self.stats["transfers"] += 1
                    self.event(now, f"transfer {leader.id} -> {target}")
        if f.partition_prob and rng.random() < f.partition_prob:
            if rng.random() < 0.5:
                victim = self.ids[rng.randrange(len(self.ids))]
                self.net.isolate(victim)
                self.event(now, f"isolate {victim}")
            else:
                ids = list(self.ids)
                rng.shuffle(ids)
                cut = rng.randrange(1, len(ids)) if len(ids) > 1 else 1
                self.net.partition([ids[:cut], ids[cut:]])
                self.event(now, f"partition {ids[:cut]} | {ids[cut:]}")
            self.stats["partitions"] += 1
        elif self.net.is_partitioned() and rng.random() < f.heal_prob:
            self.net.heal()
            self.event(now, "heal")

    def _trace_tick(self, now: int) -> None:
        parts = []
        for nid, node in self.live_nodes().items():
            parts.append(f"{nid}:{node.role.value[0]}{node.term}/{node.log.committed}")
        self._trace.update(f"{now}|{'|'.join(parts)}|{self.net.stats.sent}\n".encode())

    # -- the run ---------------------------------------------------------------------

    calm = False

    def run(self, ticks: int) -> SimResult:
        liveness = -1
        try:
            for _ in range(ticks):
                self.world.run_tick()
                now = self.world.now
                self._faults_tick(now)
                self._membership(now, ticks)
                if self.rng.random() < self.params.propose_prob:
                    self._proposal_seq += 1
                    self.propose(now, f"p{self._proposal_seq}".encode())
                leader = self.leader()
                lead_key = (leader.id, leader.term) if leader is not None else None
                if lead_key != self._last_lead and lead_key is not None:
                    self.event(now, f"leader {lead_key[0]} term {lead_key[1]}")
                self._last_lead = lead_key
                if now % self.params.probe_every_ticks == 0:
                    self._probe(now)
                    if self.mode == "two_seeds" and self._two_seeds_detected():
                        break
                if now % 10 == 0:
                    self._trace_tick(now)
                if now % 250 == 0:
                    self.checker.check_log_matching(now, self.live_nodes())
            if self.mode == "two_seeds":
                self._check_two_seeds()
            else:
                if self.conflicts:
                    self.checker.add_violation(f"cluster conflict in one cluster: {self.conflicts}")
                liveness = self._liveness()
                self.checker.check_log_matching(self.world.now, self.live_nodes())
        except AssertionError:
            self.checker.add_violation(
                f"t={self.world.now}: assertion failed in core:\n{traceback.format_exc()}"
            )
        except Exception:  # any crash of the core is a finding, not a sim error
            self.checker.add_violation(f"t={self.world.now}: exception:\n{traceback.format_exc()}")
        stats = dict(self.stats)
        stats.update(
            conflict_nodes=len(self.conflicts),
            crashes=sum(h.crashes for h in self.hosts.values()),
            net_dropped=self.net.stats.dropped,
            net_cut=self.net.stats.cut,
            terms=max((n.term for n in self.live_nodes().values()), default=0),
            commit=max((n.log.committed for n in self.live_nodes().values()), default=0),
        )
        self._trace.update(repr(sorted(stats.items())).encode())
        return SimResult(
            seed=self.seed,
            nodes=len(self.ids),
            ticks=ticks,
            mode=self.mode,
            violations=self.all_violations(),
            trace_hash=self._trace.hexdigest(),
            stats=stats,
            liveness_ticks=liveness,
        )

    def _liveness(self) -> int:
        """Heal everything, then require a leader and a commit on every live member."""
        start = self.world.now
        self.calm = True
        self.net.heal()
        self.net.faults = NetFaults()
        for h in self.hosts.values():
            if h.node is None:
                h.restart_at = start
        self.event(start, "liveness phase")
        marker = f"live-{self.seed}".encode()
        proposed_at = -1
        for _ in range(self.params.liveness_ticks_max):
            self.world.run_tick()
            now = self.world.now
            self._membership(now, 0)
            leader = self.leader()
            if leader is None:
                continue
            retry_ticks = 4 * self.params.election_timeout_ticks
            if (proposed_at < 0 or now - proposed_at > retry_ticks) and self.propose(now, marker):
                proposed_at = now
            if proposed_at < 0:
                continue
            members = [m for m in leader.conf.members() if m in self.hosts]
            if all(
                self.hosts[m].node is not None and marker in self.hosts[m].app.payloads
                for m in members
            ):
                return now - start
        self.checker.add_violation(
            f"liveness: no leader/commit of {marker!r} on all members within "
            f"{self.params.liveness_ticks_max} ticks after healing (leader: "
            f"{self.leader().id if self.leader() else None})"
        )
        return -1


def run_seed(
    seed: int,
    nodes: int = 3,
    ticks: int = 1500,
    faults: SimFaults | None = None,
    params: SimParams | None = None,
    mode: str | None = None,
    node_hook: Callable[[RaftNode], None] | None = None,
    verbose: bool = False,
) -> SimResult:
    """Run one deterministic simulation. Same arguments, same ``trace_hash``."""
    sim = RaftSim(seed, nodes, faults, params, mode, node_hook, verbose)
    return sim.run(ticks)
