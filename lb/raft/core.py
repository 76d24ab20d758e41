"""The Raft state machine: ticks and messages in, a :class:`~lb.raft.ready.Ready` out.

Shaped after etcd-io/raft. The core does no I/O and never reads a clock: time is ``tick()``,
randomness (election jitter) is the ``random.Random`` in :class:`RaftConfig`. The driver follows
"persist, then send, then apply" (see :mod:`lb.raft.ready`).

Design choices worth knowing:

- Pre-vote and check-quorum are on by default. A follower that heard from a leader within an
  election timeout ignores (pre-)vote requests (leader lease), unless the request comes from a
  leadership transfer.
- Membership changes are single-server and one at a time. A configuration takes effect when its
  entry is *appended* to a log (not when committed), as in the Raft dissertation and in
  hashicorp/raft (which Liftbridge uses). A truncated conf entry reverts the configuration. A new
  change is refused until the previous one is committed, and a new leader refuses changes until
  its first (no-op) entry commits.
- A leader removed from the configuration keeps leading (without counting itself) until the
  removal commits, then steps down.
- Commit only advances over an entry of the leader's current term (Raft §5.4.2 / Figure 8).
- Every message carries the sender's cluster id; a message from another cluster is dropped and
  reported as a :class:`~lb.raft.ready.ClusterConflict` (two-seed detection, CLU-3).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .errors import (
    ConfChangeInProgress,
    InvalidConfChange,
    NotLeader,
    ProposalDropped,
    RaftError,
    ReadyOutstanding,
)
from .log import RaftLog
from .messages import (
    NO_NODE,
    ConfChange,
    ConfChangeKind,
    ConfEntry,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    Snapshot,
    decode_conf_entry,
    encode_conf_entry,
)
from .progress import Progress, ProgressState
from .quorum import VoteResult, committed_index, quorum_size, vote_result
from .ready import ClusterConflict, Ready, Role, SoftState

MT = MessageType


@dataclass(slots=True)
class RaftConfig:
    """Static parameters of one Raft node. Ticks are the driver's unit of time."""

    id: str
    rng: random.Random
    election_timeout_ticks: int = 10
    """Base election timeout; the effective one is drawn from [base, 2*base)."""
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    inflight_msgs_max: int = 64
    """Unacknowledged appends per follower in the REPLICATE state."""
    append_bytes_max: int = 1 << 20
    """Bytes of entries per append message (at least one entry is always sent)."""
    uncommitted_entries_max: int = 4096
    """The leader drops proposals when this many entries are uncommitted."""
    apply_entries_max: int = 1024
    """Committed entries handed out per Ready."""
    compaction_trailing_entries: int = 64
    """Entries kept before a snapshot so that slightly slow followers avoid a snapshot."""

    def __post_init__(self) -> None:
        assert self.id, "node id must be non-empty"
        assert self.heartbeat_ticks >= 1
        assert self.election_timeout_ticks > self.heartbeat_ticks
        assert self.inflight_msgs_max >= 1 and self.append_bytes_max >= 1
        assert self.uncommitted_entries_max >= 1 and self.apply_entries_max >= 1
        assert self.compaction_trailing_entries >= 0


@dataclass(slots=True, frozen=True)
class ProgressStatus:
    match: int
    next: int
    state: str
    recent_active: bool
    is_learner: bool


@dataclass(slots=True, frozen=True)
class Status:
    """A read-only picture of the node, for metrics, admin tools and tests."""

    id: str
    term: int
    vote: str
    role: Role
    leader: str
    commit: int
    applied: int
    last_index: int
    first_index: int
    snapshot_index: int
    conf_state: ConfState
    cluster_id: str
    lead_transferee: str
    progress: dict[str, ProgressStatus] = field(default_factory=dict)
    cluster_conflict: ClusterConflict | None = None


@dataclass(slots=True, frozen=True)
class _ConfPoint:
    index: int
    term: int
    conf_state: ConfState


def apply_conf_change(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration that results from ``cc`` (raises InvalidConfChange if pointless)."""
    voters, learners = list(cs.voters), list(cs.learners)
    node = cc.node_id
    if not node:
        raise InvalidConfChange("empty node id")
    if cc.kind is ConfChangeKind.ADD_VOTER:
        if node in voters:
            raise InvalidConfChange(f"{node} is already a voter")
        if node in learners:
            learners.remove(node)
        voters.append(node)
    elif cc.kind is ConfChangeKind.ADD_LEARNER:
        if node in voters:
            raise InvalidConfChange(f"{node} is a voter; demotion is not supported")
        if node in learners:
            raise InvalidConfChange(f"{node} is already a learner")
        learners.append(node)
    else:
        if node in voters:
            if len(voters) == 1:
                raise InvalidConfChange("cannot remove the last voter")
            voters.remove(node)
        elif node in learners:
            learners.remove(node)
        else:
            raise InvalidConfChange(f"{node} is not a member")
    return ConfState(tuple(voters), tuple(learners), cs.cluster_id)


class RaftNode:
    """One Raft peer. Create with :meth:`bootstrap_seed`, :meth:`bootstrap_peers`,
    :meth:`join` (no state yet; wait to be added) or :meth:`restart` (from persisted state).

    Not thread-safe; the driver calls it from one task.
    """

    # ------------------------------------------------------------------ construction

    def __init__(
        self,
        config: RaftConfig,
        hard_state: HardState,
        snapshot: Snapshot,
        entries: list[Entry],
        *,
        entries_stable: bool,
    ) -> None:
        self.cfg = config
        self.id = config.id
        self._rng = config.rng
        self.log = RaftLog(snapshot, entries, stable=entries_stable)
        assert hard_state.commit <= self.log.last_index(), "hard state commit beyond log"
        self.log.commit_to(hard_state.commit)
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.lead = NO_NODE
        self.role = Role.FOLLOWER
        self._base_conf = snapshot.conf_state
        self._base_conf_index = snapshot.index
        self._conf_history: list[_ConfPoint] = []
        self.conf = snapshot.conf_state
        self.cluster_id = snapshot.conf_state.cluster_id
        self._add_conf_entries(entries)
        self.prs: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.pending_conf_index = 0
        self.lead_transferee = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = 0
        self._reset_randomized_timeout()
        self._outbox: list[Message] = []
        self._prev_hard_state = hard_state if entries_stable else HardState()
        self._prev_soft_state = SoftState(NO_NODE, Role.FOLLOWER)
        self._new_conflicts: list[ClusterConflict] = []
        self.cluster_conflict: ClusterConflict | None = None
        self._ready_outstanding = False
        self.unsafe_commit_old_terms = False
        """Test hook: commit old-term entries by counting (the Figure 8 bug). Never set it."""

    @classmethod
    def restart(
        cls,
        config: RaftConfig,
        hard_state: HardState,
        snapshot: Snapshot,
        entries: list[Entry],
    ) -> RaftNode:
        """Rebuild a node from what the driver persisted (all of it counts as stable).

        ``entries`` are the stored entries in order; they may start before ``snapshot.index``
        (compaction keeps a trailing window) but not after ``snapshot.index + 1``. The
        application must restore its state from ``snapshot.data``; committed entries after the
        snapshot are handed out again through ``ready()``.
        """
        return cls(config, hard_state, snapshot, entries, entries_stable=True)

    @classmethod
    def join(cls, config: RaftConfig) -> RaftNode:
        """A server with no state that waits for a leader to add it (CLU-2, "neither")."""
        return cls(config, HardState(), Snapshot(), [], entries_stable=True)

    @classmethod
    def bootstrap_seed(cls, config: RaftConfig, cluster_id: str | None = None) -> RaftNode:
        """A one-voter cluster of this node; it elects itself after one election timeout.

        The cluster id is drawn from ``config.rng`` unless given; it is recorded in the first
        conf entry and so shared by everyone who later joins.
        """
        cid = cluster_id or f"{config.rng.getrandbits(128):032x}"
        cs = ConfState((config.id,), (), cid)
        return cls._bootstrap(config, cs, ConfChange(ConfChangeKind.ADD_VOTER, config.id))

    @classmethod
    def bootstrap_peers(
        cls,
        config: RaftConfig,
        peers: list[str],
        quorum_size_max: int = 0,
        cluster_id: str | None = None,
    ) -> RaftNode:
        """A fixed initial configuration (raft.bootstrap.peers). Every peer must be given the
        same list; it is sorted, the first ``quorum_size_max`` become voters (0 = all) and the
        rest learners (CLU-4). The cluster id defaults to a digest of the sorted list.
        """
        from .bootstrap import peers_cluster_id, peers_conf_state

        if config.id not in peers:
            raise ValueError(f"{config.id} is not in the peer list")
        cs = peers_conf_state(peers, quorum_size_max, cluster_id or peers_cluster_id(peers))
        return cls._bootstrap(config, cs, None)

    @classmethod
    def _bootstrap(cls, config: RaftConfig, cs: ConfState, cc: ConfChange | None) -> RaftNode:
        entry = Entry(1, 1, EntryKind.CONF_CHANGE, encode_conf_entry(ConfEntry(cc, cs)))
        return cls(config, HardState(1, NO_NODE, 1), Snapshot(), [entry], entries_stable=False)

    # ------------------------------------------------------------------ invariants

    def _set_term(self, term: int) -> None:
        assert term >= self.term, f"term moved back {self.term} -> {term}"
        if term > self.term:
            self.term = term
            self.vote = NO_NODE

    def _set_vote(self, node: str) -> None:
        assert self.vote in (NO_NODE, node), f"second vote in term {self.term}"
        self.vote = node

    # ------------------------------------------------------------------ membership

    def _conf_at(self, index: int) -> ConfState:
        cs = self._base_conf
        for p in self._conf_history:
            if p.index > index:
                break
            cs = p.conf_state
        return cs

    def _add_conf_entries(self, entries: list[Entry]) -> None:
        """Track conf entries just written to the log (and drop truncated ones)."""
        hist = self._conf_history
        while hist and self.log.term(hist[-1].index) != hist[-1].term:
            hist.pop()
        floor = hist[-1].index if hist else self._base_conf_index
        for e in entries:
            if (
                e.kind is EntryKind.CONF_CHANGE
                and e.index > floor
                and self.log.term(e.index) == e.term
            ):
                hist.append(_ConfPoint(e.index, e.term, decode_conf_entry(e.data).conf_state))
        self._set_conf(hist[-1].conf_state if hist else self._base_conf)

    def _set_conf(self, cs: ConfState) -> None:
        self.conf = cs
        if cs.cluster_id:
            self.cluster_id = cs.cluster_id
        if self.role is not Role.LEADER:
            return
        members = set(cs.members())
        for node in list(self.prs):
            if node not in members:
                del self.prs[node]
        last = self.log.last_index()
        for node in cs.members():
            pr = self.prs.get(node)
            if pr is None:
                pr = Progress(next=last + 1, inflight_max=self.cfg.inflight_msgs_max)
                if node == self.id:
                    pr.match = last
                    pr.recent_active = True
                self.prs[node] = pr
            pr.is_learner = node in cs.learners
        if self.lead_transferee and self.lead_transferee not in cs.voters:
            self.lead_transferee = NO_NODE

    def _promotable(self) -> bool:
        return self.id in self.conf.voters

    # ------------------------------------------------------------------ role changes

    def _reset_randomized_timeout(self) -> None:
        base = self.cfg.election_timeout_ticks
        self.randomized_election_timeout = base + self._rng.randrange(base)

    def _reset(self, term: int) -> None:
        self._set_term(term)
        self.lead = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_timeout()
        self.votes = {}
        self.prs = {}
        self.lead_transferee = NO_NODE

    def _become_follower(self, term: int, lead: str) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead

    def _become_pre_candidate(self) -> None:
        assert self.role is not Role.LEADER
        self.role = Role.PRE_CANDIDATE
        self.lead = NO_NODE
        self.votes = {}
        self.election_elapsed = 0
        self._reset_randomized_timeout()

    def _become_candidate(self) -> None:
        assert self.role is not Role.LEADER
        self._reset(self.term + 1)
        self._set_vote(self.id)
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role is Role.CANDIDATE
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        self._set_conf(self.conf)  # builds progress for every member
        self._append_local([Entry(self.term, 0, EntryKind.NOOP)])
        # No conf change until an entry of this term commits (dissertation §4.1 fix).
        self.pending_conf_index = self.log.last_index()

    def _campaign(self, pre: bool, transfer: bool = False) -> None:
        if not self._promotable():
            return
        if pre:
            self._become_pre_candidate()
            term, mtype = self.term + 1, MT.PRE_VOTE
        else:
            self._become_candidate()
            term, mtype = self.term, MT.VOTE
        self.votes = {self.id: True}
        if vote_result(self.conf.voters, self.votes) == VoteResult.WON:
            if pre:
                self._campaign(False, transfer)
            else:
                self._become_leader()
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for v in self.conf.voters:
            if v != self.id:
                self._send(
                    mtype, v, term=term, index=last_index, log_term=last_term, transfer=transfer
                )

    # ------------------------------------------------------------------ output

    def _send(self, mtype: MessageType, to: str, term: int | None = None, **kw: object) -> None:
        self._outbox.append(
            Message(
                mtype,
                self.id,
                to,
                self.term if term is None else term,
                cluster_id=self.cluster_id,
                **kw,  # type: ignore[arg-type]
            )
        )

    def cluster_probe(self) -> Message:
        """An announcement of our cluster id for the driver to broadcast on the namespace.

        Another node that steps it and has a different cluster id reports a conflict.
        """
        return Message(MT.PROBE, self.id, "", self.term, cluster_id=self.cluster_id)

    # ------------------------------------------------------------------ leader helpers

    def _append_local(self, entries: list[Entry]) -> None:
        last = self.log.last_index()
        stamped = [Entry(self.term, last + 1 + i, e.kind, e.data) for i, e in enumerate(entries)]
        self.log.append(stamped)
        self._add_conf_entries(stamped)
        self_pr = self.prs.get(self.id)
        if self_pr is not None:
            self_pr.maybe_update(self.log.last_index())
        self._maybe_commit()
        self._bcast_append()

    def _maybe_commit(self) -> bool:
        idx = committed_index(self.conf.voters, lambda v: self.prs[v].match if v in self.prs else 0)
        if idx <= self.log.committed:
            return False
        if self.log.term(idx) != self.term and not self.unsafe_commit_old_terms:
            return False
        self.log.commit_to(idx)
        if self.id not in self.conf.members() and self._removal_committed():
            # Our own removal is committed: tell the others the commit, then step down.
            self._bcast_append()
            self._become_follower(self.term, NO_NODE)
        return True

    def _removal_committed(self) -> bool:
        hist = self._conf_history
        return not hist or hist[-1].index <= self.log.committed

    def _bcast_append(self) -> None:
        if self.role is not Role.LEADER:
            return
        for node in self.prs:
            if node != self.id:
                self._send_append(node, send_if_empty=True)

    def _send_append(self, to: str, send_if_empty: bool) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is None:
            assert prev <= self.log.offset, "progress next beyond the log"
            snap = self.log.snapshot
            assert snap.index > 0, "entries compacted without a snapshot"
            pr.become_snapshot(snap.index)
            self._send(MT.SNAPSHOT, to, snapshot=snap)
            return True
        last = self.log.last_index()
        entries = (
            self.log.slice(pr.next, last + 1, self.cfg.append_bytes_max) if pr.next <= last else []
        )
        if not entries and not send_if_empty:
            return False
        self._send(
            MT.APPEND,
            to,
            index=prev,
            log_term=prev_term,
            entries=entries,
            commit=self.log.committed,
        )
        pr.sent_entries(entries[-1].index if entries else None)
        pr.sent_since_heartbeat = True
        return True

    def _bcast_heartbeat(self) -> None:
        # An append sent since the last round already served as a heartbeat (it carries the
        # commit index and resets the follower's election timer); skip it to halve idle traffic.
        for node, pr in self.prs.items():
            if node == self.id:
                continue
            if pr.sent_since_heartbeat and pr.state is ProgressState.REPLICATE:
                pr.sent_since_heartbeat = False
                continue
            self._send(MT.HEARTBEAT, node, commit=min(pr.match, self.log.committed))

    def _quorum_active(self) -> bool:
        active = sum(
            1
            for v in self.conf.voters
            if v == self.id or (v in self.prs and self.prs[v].recent_active)
        )
        return active >= quorum_size(len(self.conf.voters))

    # ------------------------------------------------------------------ public inputs

    def tick(self) -> None:
        """Advance logical time by one tick."""
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self.election_elapsed += 1
            if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
                self.election_elapsed = 0
                self._campaign(pre=self.cfg.pre_vote)

    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        for node, pr in self.prs.items():
            if pr.state is ProgressState.SNAPSHOT and node != self.id:
                pr.snapshot_elapsed_ticks += 1
                if pr.snapshot_elapsed_ticks >= self.cfg.election_timeout_ticks:
                    pr.become_probe()  # snapshot presumed lost: probe, which may resend it
        if self.election_elapsed >= self.cfg.election_timeout_ticks:
            self.election_elapsed = 0
            last = self.log.last_index()
            for pr in self.prs.values():
                # Appends lost in REPLICATE leave a gap nobody reports; after a whole round
                # without progress, fall back to probing (which resends from match + 1).
                if (
                    pr.state is ProgressState.REPLICATE
                    and pr.match < last
                    and pr.match == pr.match_at_last_round
                ):
                    pr.become_probe()
                pr.match_at_last_round = pr.match
            if self.cfg.check_quorum:
                if not self._quorum_active():
                    self._become_follower(self.term, NO_NODE)
                    return
                for node, pr in self.prs.items():
                    pr.recent_active = node == self.id
            self.lead_transferee = NO_NODE  # a transfer that took this long has failed
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def propose(self, data: bytes) -> int:
        """Append application data; returns its index. Committed when it shows up in
        ``Ready.committed_entries`` (it may still be lost if leadership changes first)."""
        self._check_can_propose()
        self._append_local([Entry(self.term, 0, EntryKind.NORMAL, data)])
        return self.log.last_index()

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Propose one membership change; returns its index. One at a time: raises
        ConfChangeInProgress while the previous change (or the leader's no-op) is uncommitted."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.committed:
            raise ConfChangeInProgress(f"conf change at {self.pending_conf_index} uncommitted")
        cs = apply_conf_change(self.conf, cc)
        data = encode_conf_entry(ConfEntry(cc, cs))
        self._append_local([Entry(self.term, 0, EntryKind.CONF_CHANGE, data)])
        self.pending_conf_index = self.log.last_index()
        return self.pending_conf_index

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        if self.lead_transferee:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")
        if self.log.last_index() - self.log.committed >= self.cfg.uncommitted_entries_max:
            raise ProposalDropped("too many uncommitted entries")

    def transfer_leadership(self, to: str | None = None) -> str:
        """Hand leadership to ``to`` (default: the most up-to-date other voter), e.g. before a
        graceful shutdown. Returns the target. Proposals are dropped until the transfer ends;
        it is abandoned after one election timeout."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead)
        others = [v for v in self.conf.voters if v != self.id and v in self.prs]
        if to is None:
            if not others:
                raise RaftError("no other voter to transfer leadership to")
            to = max(others, key=lambda v: (self.prs[v].match, v))
        if to not in others:
            raise RaftError(f"{to} is not another voter")
        self.lead_transferee = to
        self.election_elapsed = 0
        if self.prs[to].match == self.log.last_index():
            self._send(MT.TIMEOUT_NOW, to)
        else:
            self._send_append(to, send_if_empty=True)
        return to

    def campaign(self) -> None:
        """Start an election now (tests, or an operator forcing it)."""
        if self.role is not Role.LEADER:
            self._campaign(pre=self.cfg.pre_vote)

    def compact(self, index: int, data: bytes) -> Snapshot:
        """The application snapshotted its state as of ``index`` (<= applied) into ``data``.

        The core remembers the snapshot (to send to lagging followers) and drops entries up to
        ``index - compaction_trailing_entries``. The driver persists the returned snapshot and
        may then drop stored entries below :meth:`first_index`.
        """
        assert index <= self.log.applied, "snapshot beyond applied"
        term = self.log.term(index)
        if term is None or index <= self.log.snapshot.index:
            return self.log.snapshot
        snap = Snapshot(index, term, self._conf_at(index), data)
        self.log.compact(snap, self.cfg.compaction_trailing_entries)
        self._base_conf = snap.conf_state
        self._base_conf_index = index
        self._conf_history = [p for p in self._conf_history if p.index > index]
        return snap

    def first_index(self) -> int:
        """First entry still in the log (entries before it are covered by the snapshot)."""
        return self.log.first_index()

    # ------------------------------------------------------------------ step

    def step(self, m: Message) -> None:
        """Process a message from a peer (or a PROBE broadcast by another driver)."""
        if m.to and m.to != self.id:
            return
        if m.cluster_id and self.cluster_id and m.cluster_id != self.cluster_id:
            conflict = ClusterConflict(m.from_, m.cluster_id, self.cluster_id)
            if self.cluster_conflict is None:
                self.cluster_conflict = conflict
            if conflict not in self._new_conflicts and len(self._new_conflicts) < 16:
                self._new_conflicts.append(conflict)
            return
        if m.type is MT.PROBE or m.from_ == self.id:
            return
        if m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != NO_NODE
                    and self.election_elapsed < self.cfg.election_timeout_ticks
                )
                if in_lease and not m.transfer:
                    return
            if m.type is MT.PRE_VOTE or (m.type is MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-vote never changes our term
            elif m.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
                self._become_follower(m.term, m.from_)
            else:
                self._become_follower(m.term, NO_NODE)
        elif m.term < self.term:
            if m.type in (MT.APPEND, MT.HEARTBEAT):
                # A stale leader (e.g. back from a partition): our higher term deposes it.
                self._send(MT.APPEND_RESP, m.from_)
            elif m.type is MT.PRE_VOTE:
                self._send(MT.PRE_VOTE_RESP, m.from_, reject=True)
            return

        if m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type is MT.PRE_VOTE
        resp_type = MT.PRE_VOTE_RESP if pre else MT.VOTE_RESP
        can_vote = (
            self.vote == m.from_
            or (self.vote == NO_NODE and self.lead == NO_NODE)
            or (pre and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            if not pre:
                self.election_elapsed = 0
                self._set_vote(m.from_)
            self._send(resp_type, m.from_, term=m.term)
        else:
            self._send(resp_type, m.from_, reject=True)

    def _step_leader(self, m: Message) -> None:
        pr = self.prs.get(m.from_)
        if pr is None:
            return
        if m.type is MT.APPEND_RESP:
            pr.recent_active = True
            self._handle_append_resp(m, pr)
        elif m.type is MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and pr.inflights and pr.is_paused():
                pr.inflights.popleft()  # an ack may have been lost; free one slot
            if pr.match < self.log.last_index():
                self._send_append(m.from_, send_if_empty=False)

    def _handle_append_resp(self, m: Message, pr: Progress) -> None:
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint = self.log.find_conflict_by_term(hint, m.log_term)
            if pr.maybe_decrease_to(m.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.from_, send_if_empty=True)
            return
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        if self._maybe_commit():
            self._bcast_append()
        elif self.role is Role.LEADER:
            while self._send_append(m.from_, send_if_empty=False):
                pass
        if (
            self.role is Role.LEADER
            and m.from_ == self.lead_transferee
            and pr.match == self.log.last_index()
        ):
            self._send(MT.TIMEOUT_NOW, m.from_)

    def _step_candidate(self, m: Message) -> None:
        if m.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            self._become_follower(m.term, m.from_)
            self._step_follower(m)
            return
        expected = MT.PRE_VOTE_RESP if self.role is Role.PRE_CANDIDATE else MT.VOTE_RESP
        if m.type is not expected:
            return
        self.votes[m.from_] = not m.reject
        result = vote_result(self.conf.voters, self.votes)
        if result == VoteResult.WON:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(False, transfer=m.transfer)
            else:
                self._become_leader()
        elif result == VoteResult.LOST:
            self._become_follower(self.term, NO_NODE)

    def _step_follower(self, m: Message) -> None:
        if m.type is MT.APPEND:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_append(m)
        elif m.type is MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.from_
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self._send(MT.HEARTBEAT_RESP, m.from_)
        elif m.type is MT.SNAPSHOT:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_snapshot(m)
        elif m.type is MT.TIMEOUT_NOW:
            self._campaign(pre=False, transfer=True)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(MT.APPEND_RESP, m.from_, index=self.log.committed)
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._add_conf_entries(m.entries)
            self._send(MT.APPEND_RESP, m.from_, index=last_new)
            return
        hint = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        self._send(
            MT.APPEND_RESP,
            m.from_,
            index=m.index,
            reject=True,
            reject_hint=hint,
            log_term=self.log.term(hint) or 0,
        )

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None
        if snap.index <= self.log.committed:
            pass
        elif self.log.match_term(snap.index, snap.term):
            self.log.commit_to(snap.index)
        else:
            self.log.restore(snap)
            self._base_conf = snap.conf_state
            self._base_conf_index = snap.index
            self._conf_history = []
            self._set_conf(snap.conf_state)
        self._send(MT.APPEND_RESP, m.from_, index=self.log.committed)

    # ------------------------------------------------------------------ ready / advance

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def has_ready(self) -> bool:
        """Is there anything for the driver to do?"""
        if self._ready_outstanding:
            return False
        log = self.log
        if self._outbox or log.committed > log.applied:
            return True
        if log.stable_index < log.offset + len(log.entries) or log.pending_snapshot is not None:
            return True
        hs, ss = self._prev_hard_state, self._prev_soft_state
        return bool(
            self._new_conflicts
            or hs.term != self.term
            or hs.vote != self.vote
            or hs.commit != log.committed
            or ss.leader != self.lead
            or ss.role is not self.role
        )

    def ready(self) -> Ready | None:
        """Collect pending work (see :class:`~lb.raft.ready.Ready`), or None if there is none.

        Messages are handed over exactly once. Call ``advance(ready)`` after handling it.
        """
        if self._ready_outstanding:
            raise ReadyOutstanding("advance() the previous Ready first")
        if not self.has_ready():
            return None
        log = self.log
        rd = Ready()
        hs = self._hard_state()
        assert hs.term >= self._prev_hard_state.term, "term moved back"
        assert hs.commit >= self._prev_hard_state.commit, "commit moved back"
        if hs != self._prev_hard_state:
            rd.hard_state = hs
        rd.entries = log.unstable_entries()
        rd.snapshot = log.pending_snapshot
        rd.messages, self._outbox = self._outbox, []
        hi = min(log.committed, log.applied + self.cfg.apply_entries_max)
        if hi > log.applied:
            rd.committed_entries = log.entries[log.applied - log.offset : hi - log.offset]
        ss = SoftState(self.lead, self.role)
        if ss != self._prev_soft_state:
            rd.soft_state = ss
            self._prev_soft_state = ss
        rd.cluster_conflicts, self._new_conflicts = self._new_conflicts, []
        self._ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver has persisted, sent and applied ``rd``."""
        assert self._ready_outstanding, "advance() without ready()"
        self._ready_outstanding = False
        log = self.log
        if rd.snapshot is not None and log.pending_snapshot is rd.snapshot:
            log.pending_snapshot = None
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.hard_state is not None:
            self._prev_hard_state = rd.hard_state
        if rd.committed_entries:
            idx = rd.committed_entries[-1].index
            if idx > log.applied:
                log.applied_to(idx)

    # ------------------------------------------------------------------ status

    def status(self) -> Status:
        progress = {}
        if self.role is Role.LEADER:
            progress = {
                n: ProgressStatus(p.match, p.next, p.state.value, p.recent_active, p.is_learner)
                for n, p in self.prs.items()
            }
        return Status(
            id=self.id,
            term=self.term,
            vote=self.vote,
            role=self.role,
            leader=self.lead,
            commit=self.log.committed,
            applied=self.log.applied,
            last_index=self.log.last_index(),
            first_index=self.log.first_index(),
            snapshot_index=self.log.snapshot.index,
            conf_state=self.conf,
            cluster_id=self.cluster_id,
            lead_transferee=self.lead_transferee,
            progress=progress,
            cluster_conflict=self.cluster_conflict,
        )
