"""The replication simulator: a 300-seed sweep with drops, partitions and crash-restarts,
determinism, and proof that the checkers catch deliberately broken variants."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lb.storage.epochs import LeaderEpochCache
from lb.testing.repl_log import MemLog
from lb.testing.repl_sim import BUGS, ReplFaults, ReplParams, run_seed


def _failures(seeds: range, replicas: int) -> list[str]:
    out = []
    for seed in seeds:
        r = run_seed(seed, replicas=replicas)
        if not r.ok:
            out.append(f"{r.replay_command()}\n{r.violations[0]}")
    return out


def test_sweep_300_seeds_three_replicas() -> None:
    failures = _failures(range(300), 3)
    assert not failures, "\n\n".join(failures[:3])


def test_sweep_100_seeds_five_replicas() -> None:
    failures = _failures(range(1000, 1100), 5)
    assert not failures, "\n\n".join(failures[:3])


def test_sweep_exercises_the_faults() -> None:
    """The sweep is only worth something if elections, truncations, ISR changes and crashes
    actually happen in it."""
    total: dict[str, int] = {}
    for seed in range(60):
        r = run_seed(seed)
        for k, v in r.stats.items():
            total[k] = total.get(k, 0) + v
        assert 0 <= r.liveness_ticks < 200
        if r.stats["sync_every_ticks"] == 0:  # strict fsync: nothing is ever excused
            assert r.stats["tainted"] == 0 and r.stats["excused"] == 0, seed
    for key in ("crashes", "partitions", "isr_changes", "elections", "restart_elections",
                "truncated_entries", "all_acked", "leader_acked", "net_dropped"):
        assert total[key] > 0, key


def test_same_seed_same_trace() -> None:
    a, b = run_seed(42), run_seed(42)
    assert a.trace_hash == b.trace_hash and a.stats == b.stats
    assert run_seed(43).trace_hash != a.trace_hash


def test_calm_run_commits_everything_and_acks_all() -> None:
    r = run_seed(7, faults=ReplFaults(), params=ReplParams(min_isr=2), ticks=300)
    assert r.ok, r.violations
    assert r.stats["crashes"] == 0 and r.stats["leader_changes"] == 1
    assert r.stats["committed"] >= r.stats["published"] - 2
    assert r.stats["leader_acked_lost"] == 0


@pytest.mark.parametrize("bug", [b for b in BUGS if b])
def test_checkers_catch_broken_variants(bug: str) -> None:
    for seed in range(300):
        r = run_seed(seed, bug=bug)
        if not r.ok:
            assert "--bug " + bug in r.replay_command()
            return
    pytest.fail(f"no seed in 0..299 caught {bug}")


def test_mem_epoch_cache_matches_storage(tmp_path: Path) -> None:
    """The simulator's in-memory epoch cache answers like lb.storage's LeaderEpochCache."""
    rng = random.Random(5)
    log = MemLog()
    disk = LeaderEpochCache(str(tmp_path), lambda: log.leo)
    epoch = 0
    for _ in range(300):
        op = rng.random()
        if op < 0.6:
            if rng.random() < 0.3:
                epoch += rng.randint(1, 3)
            if epoch != log.epochs.latest_epoch:
                disk.assign(epoch, log.leo)
            log.append([(epoch, b"x")])
        elif op < 0.8 and log.leo:
            cut = rng.randint(0, log.leo)
            log.truncate(cut)
            disk.truncate_from_end(cut)
        for e in range(-1, epoch + 3):
            assert log.epochs.end_offset_for(e) == disk.end_offset_for(e), (e, disk.entries)
        assert log.epochs.entries == disk.entries
