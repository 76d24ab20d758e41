"""The replication simulator with a real Raft controller group (``raft_controller=True``):
a 100-seed sweep with every replica checker plus the Raft checkers over the controller nodes,
determinism, and proof that broken replica variants are still caught in this mode."""

from __future__ import annotations

import pytest

from lb.testing.repl_sim import ReplFaults, ReplParams, SimResult, run_seed


def _sweep(seeds: range, replicas: int) -> tuple[list[str], list[SimResult]]:
    failures, results = [], []
    for seed in seeds:
        r = run_seed(seed, replicas=replicas, raft_controller=True)
        results.append(r)
        if not r.ok:
            failures.append(f"{r.replay_command()}\n{r.violations[0]}")
    return failures, results


def test_raft_controller_sweep_120_seeds_three_replicas() -> None:
    failures, results = _sweep(range(120), 3)
    assert not failures, "\n\n".join(failures[:3])
    total: dict[str, int] = {}
    for r in results:
        assert 0 <= r.liveness_ticks < 400, r.replay_command()
        for k, v in r.stats.items():
            total[k] = total.get(k, 0) + v
    # The sweep is only worth something if both layers actually see faults.
    for key in ("crashes", "partitions", "isr_changes", "elections", "truncated_entries",
                "all_acked", "leader_acked", "net_dropped", "ctl_crashes", "ctl_snapshots",
                "ctl_restart_elections_proposed", "ctl_rejected_at_apply"):
        assert total.get(key, 0) > 0, key
    assert total["ctl_terms"] > 2 * len(results)  # controller leadership changes happen
    # Most seeds get the stream created and data committed during the fault phase.
    assert sum(r.stats["committed"] > 20 for r in results) >= 0.8 * len(results)


def test_raft_controller_sweep_five_replicas() -> None:
    failures, _ = _sweep(range(1000, 1040), 5)
    assert not failures, "\n\n".join(failures[:3])


def test_raft_controller_same_seed_same_trace() -> None:
    a = run_seed(42, raft_controller=True)
    b = run_seed(42, raft_controller=True)
    assert a.trace_hash == b.trace_hash and a.stats == b.stats
    assert run_seed(42).trace_hash != a.trace_hash
    assert "--raft-controller" in a.replay_command()


def test_raft_controller_calm_run_commits_everything() -> None:
    r = run_seed(7, faults=ReplFaults(), params=ReplParams(min_isr=2), ticks=300,
                 raft_controller=True)
    assert r.ok, r.violations
    assert r.stats["crashes"] == 0 and r.stats["leader_changes"] == 1
    # Publishes before the controller created the stream find no leader; the rest commit.
    assert r.stats["committed"] >= r.stats["published"] - 40
    assert r.stats["leader_acked_lost"] == 0


@pytest.mark.parametrize("bug", ["leader_hw_ignores_isr", "follower_no_truncate"])
def test_raft_controller_mode_catches_broken_variants(bug: str) -> None:
    for seed in range(100):
        r = run_seed(seed, bug=bug, raft_controller=True)
        if not r.ok:
            assert "--raft-controller" in r.replay_command()
            return
    pytest.fail(f"no seed in 0..99 caught {bug} with the Raft controller")
