"""The chaos checker against histories broken on purpose (pure and fast: no cluster)."""

from __future__ import annotations

import copy
import json

import pytest

from lb.testing.chaos_checker import check, summary
from lb.testing.chaos_history import (
    ACKED,
    ConsumerSession,
    FaultEvent,
    History,
    LeaderObservation,
    PartitionFinal,
    PublishOp,
    ReplicaLog,
    StoredRecord,
    decode_payload,
    encode_payload,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S
SERVERS = ["a", "b", "c"]


def _record(offset: int, pid: str, epoch: int = 1) -> StoredRecord:
    return StoredRecord(offset, T0 + offset * S // 10 + 1, epoch, encode_payload(pid, 4), pid)


def good_history(n: int = 20) -> History:
    """A correct run: n publishes to s/0 (even ALL, odd LEADER), all acked and committed on
    three identical replicas, one consumer with two sessions (the second re-reads two
    offsets after a reconnect), writable right after the heal."""
    h = History(seed=7, servers=list(SERVERS), started_ns=T0)
    records = []
    for i in range(n):
        pid = f"p{i}"
        policy = "ALL" if i % 2 == 0 else "LEADER"
        op = PublishOp(pid, "s", 0, "grpc", policy, "a", T0 + i * S // 10)
        h.add_op(op)
        h.finish_op(op, ACKED, op.sent_ns + S // 100, offset=i)
        records.append(_record(i, pid))
    logs = {
        name: ReplicaLog(name, 0, n, n - 1, [copy.copy(r) for r in records]) for name in SERVERS
    }
    h.finals.append(PartitionFinal("s", 0, "a", list(SERVERS), list(SERVERS), logs))
    first = ConsumerSession("c0", "s", 0, "b", 0, T0, seen=[(i, f"p{i}") for i in range(10)])
    second = ConsumerSession("c0", "s", 0, "c", 10, T0 + S,
                             seen=[(i, f"p{i}") for i in range(8, n)])
    h.sessions.extend([first, second])
    h.leaders.append(LeaderObservation(T0, "s", 0, "a", list(SERVERS), "a"))
    h.healed_ns = T0 + 2 * S
    h.writable_ns["s/0"] = T0 + 3 * S
    h.ended_ns = T0 + 5 * S
    return h


def _log(h: History, server: str) -> ReplicaLog:
    return h.finals[0].logs[server]


def test_payload_codec_round_trip() -> None:
    assert decode_payload(encode_payload("ga-12", 10)) == "ga-12"
    assert decode_payload(b"other") is None and decode_payload(b"chaos|no-end") is None


def test_a_correct_history_passes_and_counts_redelivery() -> None:
    report = check(good_history())
    assert report.ok, report.violations
    assert report.counts["acked_all_checked"] == 10
    assert report.counts["acked_leader_checked"] == 10
    assert report.counts["consumer_redelivered"] == 2
    assert report.writable_s == {"s/0": 1.0}
    assert "OK" in summary(good_history(), report)


def test_dropped_all_acked_message_on_a_follower_fails() -> None:
    h = good_history()
    lg = _log(h, "b")
    lg.records = [r for r in lg.records if r.offset != 4]
    report = check(h)
    assert {"lost_acked_all", "divergence", "offset_gap"} <= report.kinds()
    assert any("p4" in v.detail and "replica b" in v.detail for v in report.violations)


def test_all_acked_message_overwritten_on_every_replica_fails() -> None:
    h = good_history()
    h.add_op(PublishOp("intruder", "s", 0, "nats", "ALL", "n0", T0, outcome="timeout"))
    for name in SERVERS:
        _log(h, name).records[6] = _record(6, "intruder")
    report = check(h)
    assert "lost_acked_all" in report.kinds()
    assert "divergence" not in report.kinds()  # the replicas agree; they are all wrong


def test_divergent_replica_body_fails_but_a_divergent_uncommitted_tail_passes() -> None:
    h = good_history()
    bad = _log(h, "c").records[3]
    _log(h, "c").records[3] = StoredRecord(bad.offset, bad.timestamp_ns, bad.leader_epoch,
                                           bad.body + b"!", bad.pid)
    assert "divergence" in check(h).kinds()

    h = good_history()
    for name in SERVERS:  # HW 17: offsets 18, 19 are an uncommitted tail (acks not checked)
        _log(h, name).hw = 17
    h.ops = [op for op in h.ops if op.pid not in ("p18", "p19")]
    tail = _log(h, "c")
    tail.records[18] = _record(18, "p0", epoch=2)
    tail.records[19] = _record(19, "p1", epoch=2)
    h.sessions[1].seen = [(o, p) for o, p in h.sessions[1].seen if o <= 17]
    report = check(h)
    assert report.ok, report.violations


def test_divergent_leader_epoch_fails() -> None:
    h = good_history()
    r = _log(h, "b").records[5]
    _log(h, "b").records[5] = StoredRecord(r.offset, r.timestamp_ns, 9, r.body, r.pid)
    report = check(h)
    assert report.kinds() == {"divergence"}
    assert "offset 5" in report.violations[0].detail


def test_reordered_consumer_fails() -> None:
    h = good_history()
    seen = h.sessions[0].seen
    seen[3], seen[4] = seen[4], seen[3]
    assert "consumer_order" in check(h).kinds()


def test_duplicate_within_one_session_fails() -> None:
    h = good_history()
    h.sessions[0].seen.insert(5, (4, "p4"))
    assert "consumer_order" in check(h).kinds()


def test_consumer_skipping_offsets_fails() -> None:
    h = good_history()
    h.sessions[1].start_offset = 10
    h.sessions[1].seen = [(o, p) for o, p in h.sessions[1].seen if o >= 12]
    assert "consumer_gap" in check(h).kinds()
    h = good_history()
    del h.sessions[0].seen[5]
    assert "consumer_order" in check(h).kinds()


def test_consumer_reading_something_the_log_does_not_hold_fails() -> None:
    h = good_history()
    h.sessions[0].seen[2] = (2, "p3")
    assert "consumer_mismatch" in check(h).kinds()
    h = good_history()
    h.sessions[1].seen.append((20, "p20"))
    assert "consumer_saw_uncommitted" in check(h).kinds()


def test_offset_gap_and_missing_prefix_fail() -> None:
    h = good_history()
    for name in SERVERS:
        lg = _log(h, name)
        lg.records = [r for r in lg.records if r.offset != 11]
    assert "offset_gap" in check(h).kinds()
    h = good_history()
    for name in SERVERS:
        _log(h, name).records = _log(h, name).records[2:]
        _log(h, name).oldest_offset = 2
    h.ops = [op for op in h.ops if op.offset not in (0, 1)]
    h.sessions[0].seen = h.sessions[0].seen[2:]
    h.sessions[0].start_offset = 2
    assert check(h).kinds() == {"offset_gap"}
    h.finals[0].retention = True  # the same prefix removed by retention is fine
    assert check(h).ok


def test_duplicate_and_phantom_payloads_fail() -> None:
    h = good_history()
    for name in SERVERS:
        _log(h, name).records[9] = _record(9, "p8")
    h.ops = [op for op in h.ops if op.pid != "p9"]
    assert "duplicate" in check(h).kinds()
    h = good_history()
    for name in SERVERS:
        _log(h, name).records[9] = _record(9, "nobody")
    h.ops = [op for op in h.ops if op.pid != "p9"]
    assert "phantom" in check(h).kinds()


def test_all_ack_above_hw_fails() -> None:
    h = good_history()
    for name in SERVERS:
        _log(h, name).hw = 15
    assert "acked_not_committed" in check(h).kinds()
    h.finals[0].marker_offset = 19  # a final ALL-acked marker commits everything before it
    assert check(h).ok


def test_lost_leader_ack_needs_a_failover() -> None:
    h = good_history()
    for name in SERVERS:  # p19 (LEADER) lost: the log ends at 18
        lg = _log(h, name)
        lg.records = lg.records[:19]
        lg.next_offset, lg.hw = 19, 18
    h.sessions[1].seen = h.sessions[1].seen[:-1]
    report = check(h)
    assert report.kinds() == {"lost_acked_leader_without_failover"}
    assert len(report.leader_losses) == 1 and not report.leader_losses[0].explained

    # The same loss with a leader change observed after the publish is allowed and counted.
    h.leaders.append(LeaderObservation(h.ops[19].sent_ns + S, "s", 0, "b", ["b", "c"], "b"))
    report = check(h)
    assert report.ok, report.violations
    assert len(report.leader_losses) == 1 and report.leader_losses[0].explained

    # ... and so is one shown by a new leader epoch in the log after the publish.
    h.leaders = h.leaders[:1]
    for name in SERVERS:
        lg = _log(h, name)
        newer = StoredRecord(19, h.ops[19].sent_ns + S, 2, encode_payload("q19"), "q19")
        lg.records.append(newer)
        lg.next_offset, lg.hw = 20, 19
    h.add_op(PublishOp("q19", "s", 0, "grpc", "ALL", "b", h.ops[19].sent_ns + S // 2))
    assert check(h).ok


def test_leader_ack_at_another_offset_is_a_counted_loss() -> None:
    h = good_history()
    h.ops[3].acks = [7]  # LEADER ack claiming offset 7, but p3 is at 3 (p7 is at 7)
    report = check(h)
    assert "lost_acked_leader_without_failover" in report.kinds()
    assert report.leader_losses[0].found_at == 3


def test_isr_not_restored_and_leader_outside_isr_fail() -> None:
    h = good_history()
    h.finals[0].isr = ["a", "b"]
    assert check(h).kinds() == {"isr_not_restored"}
    h.finals[0].leader = "c"
    assert "leader_not_in_isr" in check(h).kinds()


def test_not_writable_within_the_bound_fails() -> None:
    h = good_history()
    h.writable_ns["s/0"] = h.healed_ns + 31 * S
    assert check(h, writable_bound_s=30).kinds() == {"not_writable_after_heal"}
    del h.writable_ns["s/0"]
    assert check(h).kinds() == {"not_writable_after_heal"}


def test_unavailability_windows_name_the_overlapping_fault() -> None:
    h = good_history()
    for op in h.ops[10:]:
        op.done_ns += 3 * S
    h.add_fault(FaultEvent(0, "kill_partition_leader", ["a"], "leader of s/0",
                           T0 + S, healed_ns=T0 + 2 * S))
    report = check(h)
    assert report.ok
    (w,) = report.windows
    assert w.faults == [0] and w.seconds == pytest.approx(3.1, abs=0.01)


def test_history_json_round_trip_keeps_the_verdict() -> None:
    h = good_history()
    h.finals[0].logs["b"].records[2] = _record(2, "p9")
    again = History.from_json(json.loads(json.dumps(h.to_json())))
    assert check(again).to_json() == check(h).to_json()
    assert not check(again).ok
