"""FollowerState: KIP-101/279 truncation, fetch response judging, HW, leader silence, idling."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lb.replication import (
    EpochResponse,
    FetchResponse,
    FetchVerdict,
    FollowerState,
    OutcomeKind,
    Phase,
    TruncationBelowHighWatermark,
)
from lb.storage.epochs import LeaderEpochCache

MS = 1_000_000


def follower(leo: int, hw: int, epoch: int = 7, now: int = 0) -> FollowerState:
    return FollowerState("b", "a", epoch, leo, hw, now, idle_wait_ns_max=100 * MS,
                         idle_jitter_ns_max=20 * MS)


def cache(tmp_path: Path, leo: int, entries: list[tuple[int, int]]) -> LeaderEpochCache:
    c = LeaderEpochCache(str(tmp_path), lambda: leo)
    for e, o in entries:
        c.assign(e, o)
    return c


def answer(f: FollowerState, local: LeaderEpochCache, epoch: int, end: int, **kw: bool):
    req = f.epoch_request(local.latest_epoch)
    return f.truncation_point(EpochResponse(f.leader_epoch, req.epoch, epoch, end), local, **kw)


def test_leader_has_my_epoch_cut_at_its_end(tmp_path: Path) -> None:
    local = cache(tmp_path, 15, [(1, 0), (3, 8)])
    f = follower(leo=15, hw=5)
    t = answer(f, local, 3, 12)
    assert t is not None and (t.offset, t.done, t.below_hw) == (12, True, False)
    assert f.leo == 12 and f.phase is Phase.FETCHING
    assert f.next_fetch().fetch_offset == 12


def test_leader_ahead_keeps_my_log(tmp_path: Path) -> None:
    local = cache(tmp_path, 15, [(1, 0), (3, 8)])
    f = follower(leo=15, hw=5)
    t = answer(f, local, 3, 40)
    assert t is not None and t.offset == 15


def test_leader_lacks_my_epoch_kip279(tmp_path: Path) -> None:
    """Follower: epoch 1 at 0, epoch 2 at 3 (never reached the new leader). Leader: epoch 1
    at 0..4, epoch 3 from 5. Truncating to min(LEO, leader's end 5) would keep our divergent
    offsets 3..4; KIP-279 cuts to our own end of epoch 1, which is 3."""
    local = cache(tmp_path, 6, [(1, 0), (2, 3)])
    f = follower(leo=6, hw=1)
    t = answer(f, local, 1, 5)
    assert t is not None and (t.offset, t.done) == (3, True)


def test_leader_epoch_we_do_not_have_asks_again(tmp_path: Path) -> None:
    current = {"leo": 9}
    local = LeaderEpochCache(str(tmp_path), lambda: current["leo"])
    local.assign(1, 0)
    local.assign(4, 6)
    f = follower(leo=9, hw=2)
    t = answer(f, local, 3, 8)  # leader has 3 (not ours) ending at 8; our end of 3 is 6
    assert t is not None and (t.offset, t.done) == (6, False)
    assert f.phase is Phase.TRUNCATING
    current["leo"] = 6
    local.truncate_from_end(6)
    t2 = answer(f, local, 1, 5)  # now we ask for 1: the leader's 1 ends at 5
    assert t2 is not None and (t2.offset, t2.done) == (5, True)
    assert f.phase is Phase.FETCHING


def test_unknown_epoch_falls_back_to_hw(tmp_path: Path) -> None:
    local = cache(tmp_path, 10, [(2, 0)])
    f = follower(leo=10, hw=4)
    t = answer(f, local, -1, -1)
    assert t is not None and (t.offset, t.done) == (5, True)


def test_no_local_epochs_falls_back_to_hw(tmp_path: Path) -> None:
    local = cache(tmp_path, 0, [])
    f = follower(leo=0, hw=-1)
    t = answer(f, local, -1, -1)
    assert t is not None and t.offset == 0 and f.phase is Phase.FETCHING


def test_truncation_never_cuts_committed_offsets(tmp_path: Path) -> None:
    local = cache(tmp_path, 10, [(2, 0)])
    f = follower(leo=10, hw=6)
    with pytest.raises(TruncationBelowHighWatermark):
        answer(f, local, 2, 4)
    f2 = follower(leo=10, hw=6)
    t = answer(f2, local, 2, 4, unclean_ok=True)
    assert t is not None and t.below_hw and t.offset == 4
    assert f2.high_watermark == 3


def test_answers_for_another_request_or_epoch_are_ignored(tmp_path: Path) -> None:
    local = cache(tmp_path, 10, [(2, 0)])
    f = follower(leo=10, hw=1)
    f.epoch_request(2)
    assert f.truncation_point(EpochResponse(6, 2, 2, 3), local) is None  # other leader epoch
    assert f.truncation_point(EpochResponse(7, 1, 1, 3), local) is None  # other request
    assert f.truncation_point(EpochResponse(7, 2, -1, -1, error=True), local) is None
    assert f.leo == 10 and f.phase is Phase.TRUNCATING
    assert f.truncation_point(EpochResponse(7, 2, 2, 8), local) is not None
    # a late duplicate after we finished truncating is dropped too
    assert f.truncation_point(EpochResponse(7, 2, 2, 3), local) is None
    assert f.leo == 8


def fetching(leo: int, hw: int) -> FollowerState:
    f = follower(leo, hw)
    f.phase = Phase.FETCHING
    return f


def test_accepted_response_moves_leo_and_hw() -> None:
    f = fetching(5, 2)
    out = f.on_fetch_response(FetchResponse(7, 20, True, 5, 9), 1)
    assert out.accepted and out.append and not out.caught_up
    assert (out.leo, out.hw) == (10, 9)  # HW capped by our new LEO - 1
    out = f.on_fetch_response(FetchResponse(7, 8, True, 10, 12), 2)
    assert (out.leo, out.hw) == (13, 9)  # an older leader HW never moves ours back
    out = f.on_fetch_response(FetchResponse(7, 12), 3)
    assert out.accepted and not out.append and out.caught_up and out.hw == 12


def test_responses_dropped() -> None:
    f = fetching(5, 2)
    for resp, why in [
        (FetchResponse(6, 20, True, 5, 9), "epoch"),
        (FetchResponse(7, 20, True, 3, 9), "first offset"),
        (FetchResponse(7, 20, True, 6, 9), "first offset"),
        (FetchResponse(7, 20, error=FetchVerdict.NOT_A_REPLICA), "refused"),
    ]:
        out = f.on_fetch_response(resp, 1)
        assert out.kind is OutcomeKind.DROPPED and why in out.reason
    assert (f.leo, f.high_watermark, f.dropped) == (5, 2, 4)
    # a duplicate of an accepted response is dropped by the offset check
    f.on_fetch_response(FetchResponse(7, 6, True, 5, 9), 2)
    out = f.on_fetch_response(FetchResponse(7, 6, True, 5, 9), 3)
    assert out.kind is OutcomeKind.DROPPED and f.leo == 10


def test_offset_ahead_sends_back_to_truncation() -> None:
    f = fetching(5, 2)
    out = f.on_fetch_response(FetchResponse(7, 2, error=FetchVerdict.OFFSET_AHEAD), 1)
    assert out.kind is OutcomeKind.RETRUNCATE and f.phase is Phase.TRUNCATING


def test_leader_silence_counts_only_its_own_epoch() -> None:
    f = fetching(0, -1)
    assert not f.leader_silent(50 * MS, 100 * MS)
    f.on_fetch_response(FetchResponse(6, -1), 90 * MS)  # another epoch: not our leader
    assert f.leader_silent(101 * MS, 100 * MS)
    f.on_fetch_response(FetchResponse(7, -1), 120 * MS)
    assert not f.leader_silent(200 * MS, 100 * MS)
    assert f.leader_silent(221 * MS, 100 * MS)


def test_idle_wait() -> None:
    f = fetching(0, -1)
    assert f.next_fetch_delay_ns(caught_up=False, notified=False) == 0
    assert f.next_fetch_delay_ns(caught_up=True, notified=True) == 0
    assert f.next_fetch_delay_ns(caught_up=True, notified=False) == 100 * MS
    rng = random.Random(1)
    waits = {f.next_fetch_delay_ns(True, False, rng) for _ in range(50)}
    assert min(waits) >= 80 * MS and max(waits) <= 100 * MS and len(waits) > 1


def test_construction_checks_hw_below_leo() -> None:
    with pytest.raises(AssertionError):
        FollowerState("b", "a", 1, 3, 3, 0)
