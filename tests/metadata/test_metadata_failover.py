"""The controller's leader failure tracker (REPL-3, REPL-4)."""

from __future__ import annotations

import betterproto
import pytest

from lb.metadata import ops
from lb.metadata.errors import ErrorCode, MetadataError
from lb.metadata.failover import LeaderFailureTracker, LeaderReport
from lb.metadata.fsm import MetadataFSM
from lb.metadata.model import Partition
from lb.metadata.placement import Placement

TIMEOUT_NS = 15_000_000_000
S = 1_000_000_000


def _fsm(
    replicas: tuple[str, ...], leader: str, extra: list[Placement] | None = None
) -> MetadataFSM:
    fsm = MetadataFSM()
    op = ops.create_stream_op(
        name="foo",
        subject="foo",
        placements=[Placement(0, replicas, leader)],
        creation_timestamp_ns=0,
    )
    assert fsm.apply(op, 7).ok
    if extra:
        op = ops.create_stream_op(
            name="bar", subject="bar", placements=extra, creation_timestamp_ns=0
        )
        assert fsm.apply(op, 8).ok
    return fsm


def _p(fsm: MetadataFSM) -> Partition:
    p = fsm.state.partition("foo", 0)
    assert p is not None
    return p


def _report(fsm: MetadataFSM, replica: str) -> LeaderReport:
    p = _p(fsm)
    return LeaderReport("foo", 0, replica, p.leader, p.leader_epoch)


def test_isr_two_one_report_elects() -> None:
    fsm = _fsm(("a", "b"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    op = tracker.report(fsm.state, _report(fsm, "b"), now_ns=100 * S)
    assert op is not None
    body = op.change_leader
    assert (body.stream, body.partition, body.leader) == ("foo", 0, "b")
    assert (body.previous_leader, body.previous_leader_epoch) == ("a", 7)
    r = fsm.apply(op, 9)
    assert r.ok
    assert _p(fsm).leader == "b" and _p(fsm).leader_epoch == 9
    assert tracker.statistics()["partitions_reported"] == 0


def test_isr_three_needs_two_distinct_reports() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    assert tracker.report(fsm.state, _report(fsm, "b"), 0) is None
    assert tracker.report(fsm.state, _report(fsm, "b"), 1 * S) is None  # same witness again
    op = tracker.report(fsm.state, _report(fsm, "c"), 2 * S)
    assert op is not None and op.change_leader.leader in ("b", "c")


def test_isr_five_needs_three() -> None:
    fsm = _fsm(("a", "b", "c", "d", "e"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    assert tracker.report(fsm.state, _report(fsm, "b"), 0) is None
    assert tracker.report(fsm.state, _report(fsm, "c"), 0) is None
    assert tracker.report(fsm.state, _report(fsm, "d"), 0) is not None


def test_reports_outside_window_do_not_count() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    assert tracker.report(fsm.state, _report(fsm, "b"), 0) is None
    # c reports just after b's report left the window
    assert tracker.report(fsm.state, _report(fsm, "c"), TIMEOUT_NS + 1) is None
    # b reports again inside c's window: two witnesses now
    assert tracker.report(fsm.state, _report(fsm, "b"), TIMEOUT_NS + 2 * S) is not None


def test_expire_drops_old_entries() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    tracker.report(fsm.state, _report(fsm, "b"), 0)
    assert tracker.statistics() == {"partitions_reported": 1, "reports_pending": 1}
    tracker.expire(TIMEOUT_NS)
    assert tracker.statistics()["partitions_reported"] == 1  # exactly at the edge: kept
    tracker.expire(TIMEOUT_NS + 1)
    assert tracker.statistics() == {"partitions_reported": 0, "reports_pending": 0}


def test_forget_and_clear() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    tracker.report(fsm.state, _report(fsm, "b"), 0)
    tracker.forget("other")
    assert tracker.statistics()["partitions_reported"] == 1
    tracker.forget("foo", 0)
    assert tracker.statistics()["partitions_reported"] == 0
    tracker.report(fsm.state, _report(fsm, "b"), 0)
    tracker.clear()
    assert tracker.statistics()["partitions_reported"] == 0
    # After clear, counting starts afresh: one more report is not enough.
    assert tracker.report(fsm.state, _report(fsm, "c"), 0) is None


def test_isr_of_one_no_candidates() -> None:
    fsm = _fsm(("a", "b"), "a")
    p = _p(fsm)
    assert fsm.apply(ops.shrink_isr_op("foo", 0, "b", "a", p.leader_epoch), 8).ok
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    with pytest.raises(MetadataError) as info:
        tracker.report(fsm.state, _report(fsm, "b"), 0)
    assert (info.value.code, info.value.message) == (
        ErrorCode.FAILED_PRECONDITION,
        "No ISR candidates",
    )
    # single-replica partition too
    fsm = _fsm(("a",), "a")
    with pytest.raises(MetadataError, match=r"^No ISR candidates$"):
        tracker.report(fsm.state, _report(fsm, "a"), 0)


def test_stale_report_generation_mismatch() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    with pytest.raises(MetadataError) as info:
        tracker.report(fsm.state, LeaderReport("foo", 0, "b", "a", 3), 0)
    assert info.value.code is ErrorCode.FAILED_PRECONDITION
    assert info.value.message == (
        "Leader generation mismatch, current leader: a epoch: 7, got leader: a epoch: 3"
    )
    with pytest.raises(
        MetadataError,
        match=r"^Leader generation mismatch, current leader: a epoch: 7, got leader: b epoch: 7$",
    ):
        tracker.report(fsm.state, LeaderReport("foo", 0, "c", "b", 7), 0)


def test_unknown_partition_and_non_replica() -> None:
    fsm = _fsm(("a", "b"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    with pytest.raises(MetadataError, match=r"^No such partition \[stream=foo, partition=1\]$"):
        tracker.report(fsm.state, LeaderReport("foo", 1, "b", "a", 7), 0)
    with pytest.raises(MetadataError, match=r"^No such partition \[stream=zz, partition=0\]$"):
        tracker.report(fsm.state, LeaderReport("zz", 0, "b", "a", 7), 0)
    with pytest.raises(MetadataError, match=r"^x not a replica$"):
        tracker.report(fsm.state, LeaderReport("foo", 0, "x", "a", 7), 0)


def test_out_of_isr_witness_does_not_count() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    assert fsm.apply(ops.shrink_isr_op("foo", 0, "c", "a", 7), 8).ok
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    p = _p(fsm)
    # ISR (a, b): quorum 0, but c is out of the ISR so its report is no witness
    assert tracker.report(fsm.state, LeaderReport("foo", 0, "c", "a", p.leader_epoch), 0) is None
    op = tracker.report(fsm.state, LeaderReport("foo", 0, "b", "a", p.leader_epoch), 0)
    assert op is not None and op.change_leader.leader == "b"


def test_new_leader_least_leader_load() -> None:
    # b already leads two partitions of "bar", c none: c wins although b comes first.
    extra = [Placement(0, ("b",), "b"), Placement(1, ("b",), "b")]
    fsm = _fsm(("a", "b", "c"), "a", extra)
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    tracker.report(fsm.state, _report(fsm, "b"), 0)
    op = tracker.report(fsm.state, _report(fsm, "c"), 0)
    assert op is not None and op.change_leader.leader == "c"


def test_new_generation_resets_witnesses() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    tracker.report(fsm.state, _report(fsm, "b"), 0)
    # the leader changed meanwhile (some other path), so the old witness no longer counts
    assert fsm.apply(ops.change_leader_op("foo", 0, "b", "a", 7), 9).ok
    assert tracker.report(fsm.state, _report(fsm, "c"), 1) is None


def test_racing_elections_apply_once() -> None:
    fsm = _fsm(("a", "b", "c"), "a")
    tracker = LeaderFailureTracker(TIMEOUT_NS)
    tracker.report(fsm.state, _report(fsm, "b"), 0)
    first = tracker.report(fsm.state, _report(fsm, "c"), 0)
    tracker.report(fsm.state, _report(fsm, "b"), 0)
    second = tracker.report(fsm.state, _report(fsm, "c"), 0)  # before `first` is applied
    assert first is not None and second is not None
    assert fsm.apply(first, 9).ok
    r = fsm.apply(second, 10)
    assert r.error is not None and r.error.message.startswith("Leader generation mismatch")


def test_report_proto_round_trip() -> None:
    rep = LeaderReport("foo", 2, "b", "a", 99)
    msg = rep.to_proto()
    assert LeaderReport.from_proto(type(msg)().parse(bytes(msg))) == rep
    assert betterproto.serialized_on_wire(msg)
