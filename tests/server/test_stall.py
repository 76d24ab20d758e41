"""StallWatch and AckGate (lb.server.stall): a stalled leader holds its acks until the
controller confirms it still leads. A fake clock makes the stall; the integration test with a
SIGSTOPped server is tests/cluster/test_replication.py."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from lb.metadata.errors import ErrorCode, MetadataError, internal
from lb.server.stall import AckGate, StallWatch, stall_threshold_s


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gate(
    watch: StallWatch, answers: list[MetadataError | None], held_max: int = 100
) -> tuple[AckGate[int], list[list[int]], list[int]]:
    sent: list[list[int]] = []
    asked: list[int] = []

    async def confirm() -> None:
        asked.append(watch.generation)
        answer = answers.pop(0) if answers else None
        if answer is not None:
            raise answer

    async def send(out: list[int]) -> None:
        sent.append(out)

    return AckGate("s/0", watch, confirm, send, held_max), sent, asked


def test_threshold_follows_the_leader_timeout() -> None:
    assert stall_threshold_s(2_000_000_000) == 1.0
    assert stall_threshold_s(15_000_000_000) == 1.0
    assert stall_threshold_s(600_000_000) == pytest.approx(0.3)
    assert stall_threshold_s(10_000_000) == 0.1


def test_watch_counts_gaps_at_or_over_the_threshold() -> None:
    clock = FakeClock()
    watch = StallWatch(1.0, clock)
    clock.now += 0.9
    assert watch.check() == 0
    clock.now += 0.9  # measured from the last check, not from the start
    assert watch.check() == 0
    clock.now += 3.0
    assert watch.check() == 1
    assert watch.check() == 1  # the same stall is counted once
    assert watch.longest_s == pytest.approx(3.0)


@pytest.mark.trio
async def test_acks_pass_untouched_without_a_stall() -> None:
    gate, sent, asked = _gate(StallWatch(1.0, FakeClock()), [])
    assert gate.admit([1, 2]) == [1, 2]
    assert (sent, asked, gate.held) == ([], [], 0)


@pytest.mark.trio
async def test_after_a_stall_acks_wait_for_the_confirmation_and_keep_their_order() -> None:
    clock = FakeClock()
    watch = StallWatch(1.0, clock)
    gate, sent, asked = _gate(watch, [internal("no known metadata leader"), None])
    clock.now += 5.0
    assert gate.admit([1, 2]) == []
    assert gate.admit([3]) == []  # held behind the first ones
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gate.run)
        with trio.fail_after(5):
            while not sent:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert sent == [[1, 2, 3]]
    assert asked == [1, 1]  # asked again after "no leader"
    assert gate.admit([4]) == [4]  # confirmed: straight through again
    assert not gate.deposed


@pytest.mark.trio
async def test_a_deposed_leader_drops_held_acks_and_acks_nothing_again() -> None:
    clock = FakeClock()
    watch = StallWatch(1.0, clock)
    mismatch = MetadataError(ErrorCode.FAILED_PRECONDITION, "Leader generation mismatch")
    gate, sent, _ = _gate(watch, [mismatch])
    clock.now += 5.0
    assert gate.admit([1, 2, 3]) == []
    with trio.fail_after(5):
        await gate.run()  # returns once deposed
    assert gate.deposed and gate.held == 0 and sent == []
    assert gate.admit([4]) == []
    assert gate.dropped == 4


@pytest.mark.trio
async def test_held_acks_are_bounded() -> None:
    clock = FakeClock()
    gate, _, _ = _gate(StallWatch(1.0, clock), [], held_max=3)
    clock.now += 5.0
    gate.admit([1, 2])
    gate.admit([3, 4, 5])
    assert gate.held == 3 and gate.dropped == 2


@pytest.mark.trio
async def test_a_stall_during_the_release_asks_again() -> None:
    clock = FakeClock()
    watch = StallWatch(1.0, clock)
    gate, sent, asked = _gate(watch, [])
    clock.now += 5.0
    gate.admit([1])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gate.run)
        with trio.fail_after(5):
            while not sent:
                await trio.sleep(0.01)
            clock.now += 5.0  # stalled again
            assert gate.admit([2]) == []
            while len(sent) < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert sent == [[1], [2]] and asked == [1, 2]


@pytest.mark.trio
async def test_a_leadership_taken_up_just_after_a_stall_is_confirmed_first() -> None:
    clock = FakeClock()
    watch = StallWatch(1.0, clock)
    clock.now += 5.0
    watch.check()  # the stall is noticed (e.g. by the ticker) before the runtime starts
    gate, sent, asked = _gate(watch, [])
    assert gate.admit([1]) == []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gate.run)
            while not sent:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert sent == [[1]] and asked == [1]
    for _ in range(12):  # ten thresholds later (running all along) no check is needed
        clock.now += 0.9
        watch.check()
    later, _, _ = _gate(watch, [])
    assert later.admit([2]) == [2]
