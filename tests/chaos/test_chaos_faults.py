"""The seeded fault schedule (pure)."""

from __future__ import annotations

from lb.testing.chaos_faults import (
    ALL_KINDS,
    SERVER_KINDS,
    FaultKind,
    FaultTiming,
    choose,
    plan_faults,
)


def test_same_seed_same_schedule_and_seeds_differ() -> None:
    assert plan_faults(3, 120) == plan_faults(3, 120)
    assert plan_faults(3, 120) != plan_faults(4, 120)


def test_every_kind_before_any_repeats_and_duration_is_respected() -> None:
    timing = FaultTiming(lag_s=2, leader_timeout_s=3, recovery_estimate_s=6)
    plan = plan_faults(11, 600, ALL_KINDS, timing)
    first = [f.kind for f in plan[: len(ALL_KINDS)]]
    assert sorted(first) == sorted(ALL_KINDS)
    spent = sum(f.gap_s + f.hold_s + timing.recovery_estimate_s for f in plan)
    assert spent <= 600
    for f in plan:
        if f.kind is FaultKind.PAUSE:
            assert f.hold_s > 3  # outlasts the lag and leader timeouts


def test_at_least_one_fault_and_no_nats_faults_by_default() -> None:
    assert len(plan_faults(1, 0.1)) == 1
    assert all(f.kind is not FaultKind.KILL_NATS for f in plan_faults(5, 300, SERVER_KINDS))


def test_choose_is_deterministic_and_distinct() -> None:
    assert choose(["c", "a", "b"], 42, 2) == choose(["b", "c", "a"], 42, 2)
    assert len(set(choose(["a", "b", "c"], 9, 2))) == 2
