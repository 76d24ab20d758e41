"""Unit tests of the sans-IO Raft core, driven by the hand-steered RaftTestNet."""

from __future__ import annotations

import pytest

from lb.raft import (
    ConfChange,
    ConfChangeInProgress,
    ConfChangeKind,
    ConfEntry,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    InvalidConfChange,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    RaftNode,
    ReadyOutstanding,
    Role,
    Snapshot,
    decode_conf_entry,
    encode_conf_entry,
    join_change,
    peers_conf_state,
)
from lb.raft.quorum import VoteResult, committed_index, quorum_size, vote_result
from lb.testing.raft_net import RaftTestNet, make_config

IDS = ["a", "b", "c"]


def peers_net(ids: list[str] = IDS, **cfg: object) -> RaftTestNet:
    return RaftTestNet(RaftNode.bootstrap_peers(make_config(i, **cfg), ids) for i in ids)


def elected_net(ids: list[str] = IDS, leader: str = "a", **cfg: object) -> RaftTestNet:
    net = peers_net(ids, **cfg)
    net.process_all()
    net.deliver()
    net.elect(leader)
    assert net.leader() == leader
    return net


def conf_entry(index: int, term: int, cs: ConfState) -> Entry:
    return Entry(term, index, EntryKind.CONF_CHANGE, encode_conf_entry(ConfEntry(None, cs)))


# -------------------------------------------------------------------------- helpers


def test_quorum_arithmetic() -> None:
    assert [quorum_size(n) for n in range(6)] == [0, 1, 2, 2, 3, 3]
    match = {"a": 5, "b": 3, "c": 1}
    assert committed_index(match, match.__getitem__) == 3
    assert vote_result(["a", "b", "c"], {"a": True}) == VoteResult.PENDING
    assert vote_result(["a", "b", "c"], {"a": True, "b": True}) == VoteResult.WON
    assert vote_result(["a", "b", "c"], {"a": True, "b": False, "c": False}) == VoteResult.LOST


def test_conf_entry_roundtrip() -> None:
    ce = ConfEntry(ConfChange(ConfChangeKind.ADD_LEARNER, "x"), ConfState(("a",), ("x",), "cid"))
    assert decode_conf_entry(encode_conf_entry(ce)) == ce


def test_join_change_respects_max_quorum() -> None:
    cs = ConfState(("a",), (), "c")
    assert join_change(cs, "b", 2) == ConfChange(ConfChangeKind.ADD_VOTER, "b")
    cs2 = ConfState(("a", "b"), (), "c")
    assert join_change(cs2, "c", 2) == ConfChange(ConfChangeKind.ADD_LEARNER, "c")
    assert join_change(cs2, "c", 0) == ConfChange(ConfChangeKind.ADD_VOTER, "c")
    assert join_change(cs2, "b", 2) is None
    assert peers_conf_state(["c", "b", "a"], 2, "x") == ConfState(("a", "b"), ("c",), "x")


# -------------------------------------------------------------------------- bootstrap


def test_seed_bootstrap_elects_itself() -> None:
    node = RaftNode.bootstrap_seed(make_config("s"))
    net = RaftTestNet([node])
    net.process_all()
    first = net.nodes["s"].readies[0]
    assert first.entries and first.entries[0].kind is EntryKind.CONF_CHANGE
    assert first.hard_state == HardState(1, "", 1)
    net.tick("s", 2 * node.cfg.election_timeout_ticks)
    assert node.role is Role.LEADER and node.term == 2
    assert node.conf.voters == ("s",) and node.cluster_id
    idx = node.propose(b"x")
    net.process_all()
    assert node.log.committed == idx and net.applied_data("s") == [b"x"]


def test_peers_bootstrap_elects_one_leader_and_replicates() -> None:
    net = peers_net()
    for _ in range(40):
        net.tick_all()
        if net.leader():
            break
    leader = net.leader()
    assert leader is not None
    assert sum(nn.node.role is Role.LEADER for nn in net.nodes.values()) == 1
    net.node(leader).propose(b"hello")
    net.deliver()
    net.tick_all(2)
    for i in IDS:
        assert net.applied_data(i) == [b"hello"]
    cids = {nn.node.cluster_id for nn in net.nodes.values()}
    assert len(cids) == 1 and next(iter(cids)).startswith("peers-")


def test_bootstrap_peers_max_quorum_makes_learners() -> None:
    assert peers_net().node("a").conf.voters == ("a", "b", "c")
    nodes = [RaftNode.bootstrap_peers(make_config(i), IDS, quorum_size_max=2) for i in IDS]
    assert nodes[0].conf == ConfState(("a", "b"), ("c",), nodes[0].cluster_id)
    net = RaftTestNet(nodes)
    net.process_all()
    net.node("c").campaign()  # a learner cannot campaign
    assert net.node("c").role is Role.FOLLOWER


# -------------------------------------------------------------------------- elections


def test_pre_vote_prevents_term_inflation_of_partitioned_node() -> None:
    net = elected_net()
    term = net.node("a").term
    net.isolate("c")
    net.tick_all(100)
    assert net.node("c").term == term  # pre-vote never succeeded, so no term bump
    assert net.node("c").role is Role.PRE_CANDIDATE
    net.heal()
    net.tick_all(5)
    assert net.leader() == "a" and net.node("a").term == term


def test_without_pre_vote_partitioned_node_inflates_term() -> None:
    net = elected_net(pre_vote=False, check_quorum=False)
    term = net.node("a").term
    net.isolate("c")
    net.tick_all(100)
    assert net.node("c").term > term + 3


def test_check_quorum_leader_steps_down() -> None:
    net = elected_net()
    net.isolate("a")
    et = net.node("a").cfg.election_timeout_ticks
    net.tick("a", 2 * et)
    assert net.node("a").role is Role.FOLLOWER
    # ... and the others elect a new leader
    net.tick_all(4 * et)
    assert net.leader() in ("b", "c")


def test_lease_follower_ignores_vote_while_leader_is_live() -> None:
    net = elected_net()
    b = net.node("b")
    term = b.term
    b.step(Message(MessageType.VOTE, "c", "b", term + 1, log_term=99, index=99))
    net.process("b")
    assert b.term == term and b.vote == "a"
    assert not [m for m in net.pool if m.type is MessageType.VOTE_RESP]


def test_vote_once_per_term() -> None:
    net = peers_net()
    net.process_all()
    c = net.node("c")
    c.step(Message(MessageType.VOTE, "a", "c", 5, log_term=1, index=1))
    c.step(Message(MessageType.VOTE, "b", "c", 5, log_term=1, index=1))
    net.process("c")
    resps = [m for m in net.pool if m.type is MessageType.VOTE_RESP]
    assert [(m.to, m.reject) for m in resps] == [("a", False), ("b", True)]
    assert c.vote == "a"
    with pytest.raises(AssertionError):
        c._set_vote("b")
    with pytest.raises(AssertionError):
        c._set_term(1)


# -------------------------------------------------------------------------- replication


def _node_with_log(node_id: str, terms: list[int], hs_term: int) -> RaftNode:
    cs = ConfState(tuple(IDS), (), "cid")
    entries = [conf_entry(1, terms[0], cs)]
    entries += [Entry(t, i + 1, EntryKind.NORMAL, b"") for i, t in enumerate(terms) if i > 0]
    return RaftNode.restart(make_config(node_id), HardState(hs_term, "", 1), Snapshot(), entries)


def test_conflict_back_off_skips_whole_terms() -> None:
    a = _node_with_log("a", [1] * 10 + [3] * 30, 3)
    b = _node_with_log("b", [1] * 10 + [2] * 40, 2)
    c = _node_with_log("c", [1] * 10 + [3] * 30, 3)
    net = RaftTestNet([a, b, c])
    net.process_all()
    net.elect("a")
    assert net.leader() == "a"
    net.tick_all(3)
    rejects = [m for m in net.sent(MessageType.APPEND_RESP, "b") if m.reject]
    assert 1 <= len(rejects) <= 3, len(rejects)
    assert [e.term for e in b.log.entries] == [e.term for e in a.log.entries]
    assert b.log.committed == a.log.committed == a.log.last_index()


def test_flow_control_bounds_inflight_and_bytes() -> None:
    net = elected_net(inflight_msgs_max=2, append_bytes_max=100)
    net.isolate("b")
    net.isolate("c")  # no acks: the leader must stop after 2 appends per follower
    a = net.node("a")
    for i in range(20):
        a.propose(bytes(40) + bytes([i]))
    net.process("a")
    appends = [m for m in net.pool if m.type is MessageType.APPEND and m.to == "b"]
    with_entries = [m for m in appends if m.entries]
    assert len(with_entries) <= 2
    assert all(sum(e.size_bytes() for e in m.entries) <= 100 for m in with_entries)


def test_leader_never_commits_old_term_entry_by_counting() -> None:
    """Raft Figure 8: an entry from an earlier term is not committed by replica count alone."""
    cs = ConfState(tuple(IDS), (), "cid")
    base = [conf_entry(1, 1, cs), Entry(2, 2, EntryKind.NORMAL, b"old")]
    for unsafe in (False, True):
        a = RaftNode.restart(make_config("a"), HardState(2, "", 1), Snapshot(), list(base))
        a.unsafe_commit_old_terms = unsafe
        a.campaign()  # pre-vote
        a.step(Message(MessageType.PRE_VOTE_RESP, "b", "a", 3))
        a.step(Message(MessageType.VOTE_RESP, "b", "a", 3))
        assert a.role is Role.LEADER and a.term == 3 and a.log.last_index() == 3
        a.step(Message(MessageType.APPEND_RESP, "b", "a", 3, index=2))  # b has the old entry
        assert a.log.committed == (2 if unsafe else 1)
        a.step(Message(MessageType.APPEND_RESP, "b", "a", 3, index=3))  # b has the no-op
        assert a.log.committed == 3


# -------------------------------------------------------------------------- snapshots


def test_snapshot_install_for_lagging_follower() -> None:
    net = elected_net(compaction_trailing_entries=2)
    net.isolate("c")
    a = net.node("a")
    for i in range(30):
        a.propose(f"v{i}".encode())
        net.deliver()
    net.tick_all(2)
    snap = a.compact(a.log.applied, b"state@" + str(a.log.applied).encode())
    assert a.log.first_index() == snap.index - 1
    net.heal()
    net.tick_all(25)  # the stalled progress falls back to probing within two rounds
    c = net.nodes["c"]
    got = [rd.snapshot for rd in c.readies if rd.snapshot is not None]
    assert got and got[0].index == snap.index and got[0].data == snap.data
    assert c.disk.snapshot == snap and all(e.index > snap.index for e in c.disk.entries)
    a.propose(b"after")
    net.deliver()
    net.tick_all(2)
    assert net.applied_data("c")[-1] == b"after"
    assert c.node.log.committed == a.log.committed
    # Restart c from its disk: it comes back with the snapshot and the entries after it.
    c2 = RaftNode.restart(make_config("c"), c.disk.hard_state, c.disk.snapshot, c.disk.entries)
    assert c2.log.last_index() == c.node.log.last_index() and c2.log.applied == snap.index


# -------------------------------------------------------------------------- membership


def _grow(net: RaftTestNet, leader: str, new_id: str, quorum_max: int) -> None:
    net.add(RaftNode.join(make_config(new_id)))
    cc = join_change(net.node(leader).conf, new_id, quorum_max)
    assert cc is not None
    net.node(leader).propose_conf_change(cc)
    net.deliver()
    net.tick_all(3)


def test_join_as_voter_then_learner_with_max_quorum() -> None:
    seed = RaftNode.bootstrap_seed(make_config("a"))
    net = RaftTestNet([seed])
    net.tick("a", 30)
    assert seed.role is Role.LEADER
    _grow(net, "a", "b", 2)
    _grow(net, "a", "c", 2)
    assert seed.conf.voters == ("a", "b") and seed.conf.learners == ("c",)
    for i in ("b", "c"):
        assert net.node(i).conf == seed.conf and net.node(i).cluster_id == seed.cluster_id
    seed.propose(b"x")
    net.deliver()
    net.tick_all(2)
    assert net.applied_data("c") == [b"x"]
    # The learner does not count: without b nothing commits.
    net.isolate("b")
    idx = seed.propose(b"y")
    net.deliver()
    assert seed.log.committed < idx
    # Promote the learner.
    net.heal()
    net.tick_all(3)
    seed.propose_conf_change(ConfChange(ConfChangeKind.ADD_VOTER, "c"))
    net.deliver()
    assert seed.conf.voters == ("a", "b", "c") and net.node("c").conf.voters == seed.conf.voters


def test_conf_changes_one_at_a_time_and_validated() -> None:
    net = elected_net()
    a = net.node("a")
    with pytest.raises(InvalidConfChange):
        a.propose_conf_change(ConfChange(ConfChangeKind.REMOVE_NODE, "zz"))
    with pytest.raises(InvalidConfChange):
        a.propose_conf_change(ConfChange(ConfChangeKind.ADD_VOTER, "b"))
    net.isolate("b")
    net.isolate("c")
    a.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, "d"))
    with pytest.raises(ConfChangeInProgress):
        a.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, "e"))
    with pytest.raises(NotLeader) as ei:
        net.node("b").propose(b"x")
    assert ei.value.leader_hint == "a"


def test_remove_follower_and_leader() -> None:
    net = elected_net()
    a = net.node("a")
    a.propose_conf_change(ConfChange(ConfChangeKind.REMOVE_NODE, "c"))
    net.deliver()
    net.tick_all(2)
    assert a.conf.voters == ("a", "b") and net.node("b").conf.voters == ("a", "b")
    assert "c" not in a.prs
    # The leader removes itself: it steps down once the change commits; b takes over.
    a.propose_conf_change(ConfChange(ConfChangeKind.REMOVE_NODE, "a"))
    net.deliver()
    assert a.role is Role.FOLLOWER
    assert net.node("b").conf.voters == ("b",)
    net.tick_all(40)
    assert net.leader() == "b"
    net.node("b").propose(b"solo")
    net.deliver()
    assert net.applied_data("b")[-1] == b"solo"


# -------------------------------------------------------------------------- transfer


def test_leadership_transfer_to_most_up_to_date_voter() -> None:
    net = elected_net()
    a = net.node("a")
    a.propose(b"x")
    net.deliver()
    net.cut("a", "c")
    a.propose(b"y")  # only b gets it: b is the most up to date
    net.deliver()
    term = a.term
    target = a.transfer_leadership()
    assert target == "b"
    with pytest.raises(ProposalDropped):
        a.propose(b"z")
    net.deliver()
    assert net.leader() == "b" and net.node("b").term == term + 1
    assert a.role is Role.FOLLOWER


def test_transfer_to_lagging_voter_catches_it_up_first() -> None:
    net = elected_net()
    a = net.node("a")
    net.isolate("c")
    for i in range(5):
        a.propose(bytes([i]))
    net.deliver()
    net.heal()
    assert a.transfer_leadership("c") == "c"
    net.deliver()
    assert net.leader() == "c"
    assert net.node("c").log.last_index() >= 7


# -------------------------------------------------------------------------- ready contract


def test_ready_must_be_advanced_before_next() -> None:
    node = RaftNode.bootstrap_seed(make_config("s"))
    rd = node.ready()
    assert rd is not None and rd.must_sync()
    with pytest.raises(ReadyOutstanding):
        node.ready()
    node.advance(rd)
    assert node.ready() is None


def test_restart_replays_committed_entries_after_snapshot() -> None:
    net = elected_net()
    a = net.node("a")
    for i in range(6):
        a.propose(bytes([i]))
    net.deliver()
    net.tick_all(2)
    nn = net.nodes["b"]
    b2 = RaftNode.restart(make_config("b"), nn.disk.hard_state, nn.disk.snapshot, nn.disk.entries)
    rd = b2.ready()
    assert rd is not None
    assert [e.index for e in rd.committed_entries] == list(range(1, nn.disk.hard_state.commit + 1))
    assert rd.hard_state is None and not rd.entries


# -------------------------------------------------------------------------- two seeds


def test_two_seeds_detect_each_other() -> None:
    s1 = RaftNode.bootstrap_seed(make_config("s1"))
    s2 = RaftNode.bootstrap_seed(make_config("s2"))
    net = RaftTestNet([s1, s2])
    net.tick_all(30)
    assert s1.role is Role.LEADER and s2.role is Role.LEADER
    assert s1.cluster_id != s2.cluster_id
    s1.step(s2.cluster_probe())
    s2.step(s1.cluster_probe())
    net.process_all()
    for me, other in ((s1, s2), (s2, s1)):
        conflict = me.status().cluster_conflict
        assert conflict is not None and conflict.peer == other.id
        assert conflict.peer_cluster_id == other.cluster_id
        rd = net.nodes[me.id].readies[-1]
        assert rd.cluster_conflicts and rd.cluster_conflicts[0].peer == other.id
    # Same cluster, no conflict; a joiner ("" cluster id) never conflicts.
    j = RaftNode.join(make_config("j"))
    j.step(s1.cluster_probe())
    assert j.status().cluster_conflict is None
