"""LeaderState: HW over the (maximal) ISR, min ISR, ISR shrink/expand proposals, fetch
verdicts, notifications and the KIP-101 epoch answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from lb.replication import (
    EpochRequest,
    FetchVerdict,
    IsrChangeKind,
    LeaderState,
    end_offset_for_epoch,
)
from lb.storage.epochs import LeaderEpochCache

MS = 1_000_000
LAG = 100 * MS


def leader(isr=("a", "b", "c"), min_isr=1, leo=0, hw=-1, epoch=5, pepoch=5, now=0):
    return LeaderState("a", epoch, ("a", "b", "c"), isr, min_isr, LAG, now, leo,
                       hw=hw, partition_epoch=pepoch, proposal_retry_ns=50 * MS)


def test_hw_is_min_leo_over_isr_minus_one_and_waits_for_unknown_followers() -> None:
    ld = leader()
    assert ld.high_watermark == -1
    ld.on_local_append(10)
    assert ld.high_watermark == -1  # b and c have not fetched yet
    assert ld.on_fetch("b", 7, 1, 5) is FetchVerdict.OK
    assert ld.high_watermark == -1  # c still unknown
    ld.on_fetch("c", 4, 2, 5)
    assert ld.high_watermark == 3
    ld.on_fetch("c", 10, 3, 5)
    assert ld.high_watermark == 6  # b's LEO 7 is now the minimum


def test_single_member_isr_commits_on_append() -> None:
    ld = leader(isr=("a",))
    ld.on_local_append(3)
    assert ld.high_watermark == 2


def test_hw_never_goes_back_when_a_follower_regresses() -> None:
    ld = leader()
    ld.on_local_append(10)
    ld.on_fetch("b", 10, 1, 5)
    ld.on_fetch("c", 10, 1, 5)
    assert ld.high_watermark == 9
    ld.on_fetch("c", 4, 2, 5)  # restarted follower reports a shorter log
    assert ld.high_watermark == 9


def test_nothing_commits_below_min_isr_and_shrink_releases() -> None:
    """REPL-5 and REPL-6: with ISR {a,b,c} and c dead, nothing commits until c is removed."""
    ld = leader(min_isr=2)
    ld.on_local_append(5)
    ld.on_fetch("b", 5, 1, 5)
    assert ld.high_watermark == -1  # c never fetched
    assert ld.apply_isr(("a", "b"), 6)
    assert ld.high_watermark == 4  # REPL-6: the shrink commits pending messages
    assert ld.apply_isr(("a",), 7)
    ld.on_local_append(8)
    assert ld.high_watermark == 4  # ISR 1 < min ISR 2: nothing new commits
    assert not ld.can_commit()


def test_stale_isr_is_ignored() -> None:
    ld = leader(pepoch=9)
    assert not ld.apply_isr(("a",), 9)
    assert not ld.apply_isr(("a",), 3)
    assert ld.isr == ("a", "b", "c")


def test_follower_that_stops_fetching_is_proposed_for_removal_once() -> None:
    ld = leader()
    ld.on_local_append(3)
    ld.on_fetch("b", 3, 10 * MS, 5)
    ld.on_fetch("c", 3, 10 * MS, 5)
    assert ld.tick(100 * MS) == []
    ld.on_fetch("b", 3, 105 * MS, 5)  # b keeps fetching at the LEO, c went silent
    changes = ld.tick(111 * MS)
    assert [(c.kind, c.replica, c.partition_epoch) for c in changes] == [
        (IsrChangeKind.SHRINK, "c", 5)
    ]
    assert ld.tick(120 * MS) == []  # pending: not repeated...
    again = ld.tick(161 * MS)  # ...until the retry timeout passes
    assert [c.replica for c in again] == ["c"]
    ld.apply_isr(("a", "b"), 6)
    assert ld.pending() == []
    assert ld.maximal_isr == ("a", "b")


def test_leader_never_removes_itself() -> None:
    ld = leader(isr=("a",))
    assert ld.tick(10 * LAG) == []


def test_follower_behind_is_removed_but_steady_one_batch_behind_is_kept() -> None:
    """Kafka's caught-up rule: reaching the LEO the leader had at the previous fetch counts."""
    ld = leader(isr=("a", "b", "c"))
    t = 0
    leo = 0
    seen = 0  # the leader's LEO when b last fetched
    # Data arrives before every fetch, so b is never at the LEO when it fetches; but it always
    # reaches the LEO the leader had at its previous fetch. c fetches as often, never catching up.
    for _ in range(40):
        t += 10 * MS
        leo += 5
        ld.on_local_append(leo)
        assert ld.on_fetch("b", seen, t, 5) is FetchVerdict.OK
        seen = leo
        ld.on_fetch("c", 0, t, 5)
    assert ld.progress("b").caught_up_ns == t - 10 * MS
    removed = [c.replica for c in ld.tick(t)]
    assert removed == ["c"]


def test_expand_when_caught_up_and_counted_for_hw_at_once() -> None:
    ld = leader(isr=("a", "b"))
    ld.on_local_append(10)
    ld.on_fetch("b", 10, 1 * MS, 5)
    assert ld.high_watermark == 9
    ld.on_fetch("c", 4, 2 * MS, 5)
    assert ld.tick(3 * MS) == []  # c behind: not in sync
    ld.on_fetch("c", 10, 4 * MS, 5)
    changes = ld.tick(5 * MS)
    assert [(c.kind, c.replica) for c in changes] == [(IsrChangeKind.EXPAND, "c")]
    assert ld.maximal_isr == ("a", "b", "c")
    ld.on_local_append(12)
    ld.on_fetch("b", 12, 6 * MS, 5)
    assert ld.high_watermark == 9  # c counts from the proposal on: it has only 10
    ld.on_fetch("c", 12, 7 * MS, 5)
    assert ld.high_watermark == 11
    ld.apply_isr(("a", "b", "c"), 6)
    assert ld.pending() == [] and ld.isr == ("a", "b", "c")


def test_rejected_expand_is_settled_by_a_newer_isr() -> None:
    ld = leader(isr=("a", "b"))
    ld.on_local_append(2)
    ld.on_fetch("c", 2, 1 * MS, 5)
    assert [c.kind for c in ld.tick(2 * MS)] == [IsrChangeKind.EXPAND]
    ld.apply_isr(("a",), 6)  # the controller did something else: the proposal is void
    assert ld.pending() == []
    assert ld.maximal_isr == ("a",)


def test_fetch_verdicts() -> None:
    ld = leader(leo=4)
    assert ld.on_fetch("b", 1, 1, 4) is FetchVerdict.STALE_EPOCH
    assert ld.on_fetch("b", 1, 1, 6) is FetchVerdict.STALE_EPOCH
    assert ld.on_fetch("z", 1, 1, 5) is FetchVerdict.NOT_A_REPLICA
    assert ld.on_fetch("a", 1, 1, 5) is FetchVerdict.NOT_A_REPLICA
    assert ld.on_fetch("b", 5, 1, 5) is FetchVerdict.OFFSET_AHEAD
    assert ld.progress("b").leo == -1  # refused fetches count for nothing
    assert ld.on_fetch("b", 4, 1, 5) is FetchVerdict.OK


def test_time_values_must_not_go_back() -> None:
    ld = leader(now=100)
    with pytest.raises(AssertionError):
        ld.tick(99)


def test_idle_followers_are_notified_once() -> None:
    ld = leader(leo=3)
    ld.on_fetch("b", 3, 1, 5)
    ld.on_fetch("c", 1, 1, 5)
    assert ld.on_local_append(4) == ["b"]
    assert ld.on_local_append(5) == []


def test_epoch_answer_uses_storage_epoch_cache(tmp_path: Path) -> None:
    leo = 30
    cache = LeaderEpochCache(str(tmp_path), lambda: leo)
    cache.assign(1, 0)
    cache.assign(3, 10)
    cache.assign(5, 20)
    ld = leader(leo=leo, epoch=5)
    assert end_offset_for_epoch(1, cache) == (1, 10)
    assert end_offset_for_epoch(2, cache) == (1, 10)  # we never had 2: where 1 ends
    assert end_offset_for_epoch(5, cache) == (5, 30)
    assert end_offset_for_epoch(7, cache) == (-1, -1)
    assert end_offset_for_epoch(-1, cache) == (-1, -1)
    r = ld.answer_epoch_request(EpochRequest("b", 5, 3), cache)
    got = (r.leader_epoch, r.requested_epoch, r.epoch, r.end_offset, r.error)
    assert got == (5, 3, 3, 20, False)
    assert ld.answer_epoch_request(EpochRequest("b", 4, 3), cache).error
