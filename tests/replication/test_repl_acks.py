"""PendingAcks: ALL acks by HW, LEADER acks by durable offset, NONE never, the bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lb.replication import AckPolicy, PendingAcks


def test_all_acks_release_by_hw_in_order_splitting_batches() -> None:
    acks: PendingAcks[str] = PendingAcks()
    acks.add_all([0, 1, 2], ["a0", "a1", "a2"])
    acks.add_all([5, 6], ["a5", "a6"])
    assert acks.release(-1) == []
    assert acks.release(1) == ["a0", "a1"]
    assert acks.release(1) == []
    assert acks.release(5) == ["a2", "a5"]
    assert len(acks) == 1
    assert acks.release(100) == ["a6"]
    assert len(acks) == 0


def test_leader_acks_wait_for_durable_offset_and_none_is_never_held() -> None:
    acks: PendingAcks[str] = PendingAcks()
    acks.add(AckPolicy.ALL, [0], ["all0"])
    acks.add(AckPolicy.LEADER, [1, 2], ["l1", "l2"])
    assert acks.add(AckPolicy.NONE, [3], ["n3"]) == []
    assert acks.release_leader(0) == []
    assert acks.release_leader(1) == ["l1"]
    assert acks.release(5) == ["all0"]  # HW does not release LEADER acks
    assert acks.release_leader(5) == ["l2"]
    assert len(acks) == 0


def test_bound_evicts_oldest_all_acks_first() -> None:
    acks: PendingAcks[str] = PendingAcks(pending_max=4)
    assert acks.room() == 4
    acks.add_all([0, 1], ["a0", "a1"])
    acks.add_leader([2], ["l2"])
    acks.add_all([3], ["a3"])
    assert acks.room() == 0
    assert acks.add_leader([4, 5], ["l4", "l5"]) == ["a0", "a1"]
    assert acks.add_all([6], ["a6"]) == ["a3"]
    assert acks.add_all([7], ["a7"]) == ["a6"]
    assert acks.statistics()["evicted"] == 4
    assert acks.release_leader(9) == ["l2", "l4", "l5"]
    assert acks.release(9) == ["a7"]


def test_drain_on_leadership_loss_resets_offsets() -> None:
    acks: PendingAcks[str] = PendingAcks()
    acks.add_all([10, 11], ["a", "b"])
    acks.add_leader([12], ["c"])
    assert acks.drain() == ["a", "b", "c"]
    acks.add_all([3], ["d"])  # a new leadership starts lower (truncated log)
    assert acks.release(3) == ["d"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3), st.integers(0, 6)),
                min_size=1, max_size=30))
def test_release_returns_exactly_acks_at_or_below_hw_once(
    steps: list[tuple[int, int, int]]
) -> None:
    acks: PendingAcks[int] = PendingAcks(pending_max=10_000)
    next_offset = 0
    hw = -1
    added: list[int] = []
    released: list[int] = []
    for size, gap, hw_step in steps:
        offsets = list(range(next_offset + gap, next_offset + gap + size))
        next_offset = offsets[-1] + 1
        acks.add_all(offsets, offsets)
        added += offsets
        hw = min(hw + hw_step * 2, next_offset - 1)
        got = acks.release(hw)
        assert got == sorted(got) and all(o <= hw for o in got)
        released += got
        assert len(acks) == len([o for o in added if o > hw])
    assert released == [o for o in added if o <= hw]
