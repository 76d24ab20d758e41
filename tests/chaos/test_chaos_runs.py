"""Chaos runs on real processes with fixed seeds (issue 7). Slow: about 2.5 minutes together.

Each run kills, pauses and restarts servers (and a NATS server) while every publish path and ack
policy is in flight, heals, and requires the checker to find nothing. A failure prints the
summary, the seed and the work dir with every server's log; replay it with
``python tools/chaos/chaos.py --seed N ...`` and the options in the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lb.testing.chaos_runner import ChaosConfig, ChaosResult, run_chaos

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, **kw: object) -> ChaosResult:
    lines: list[str] = []
    cfg = ChaosConfig(work_dir=tmp_path, keep=True, log=lines.append, **kw)  # type: ignore[arg-type]
    result = run_chaos(cfg)
    text = "\n".join(lines) + "\n" + result.summary() + f"\n  work dir: {tmp_path}"
    print(text)
    h = result.history
    assert len(h.faults) >= 3, text
    assert any(f.inflight_at_start > 0 for f in h.faults), text  # faults hit traffic in flight
    assert result.report.counts.get("acked_all_checked", 0) > 100, text
    assert result.report.counts.get("consumer_reads", 0) > 100, text
    assert result.report.ok, text
    return result


def test_chaos_three_servers_one_nats(tmp_path: Path) -> None:
    _run(tmp_path, seed=101, duration_s=40)


def test_chaos_three_servers_nats_cluster(tmp_path: Path) -> None:
    result = _run(tmp_path, seed=202, duration_s=40, nats_servers=3)
    assert any(f.kind == "kill_nats" for f in result.history.faults)


def test_chaos_five_servers(tmp_path: Path) -> None:
    _run(tmp_path, seed=303, duration_s=40, servers=5, partitions=3)
