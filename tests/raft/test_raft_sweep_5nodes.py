"""CI sweep: 250 seeds of a 5-node cluster through the deterministic simulator.

Together with the other sweep file this runs 500 seeds. A failure names the seed and the
command that replays it.
"""

from __future__ import annotations

import pytest

from lb.testing.raft_sim import run_seed

SEEDS = range(250)
TICKS = 800


@pytest.mark.parametrize("chunk", range(5))
def test_sweep_5_nodes(chunk: int) -> None:
    failures = []
    for seed in SEEDS[chunk::5]:
        res = run_seed(seed, nodes=5, ticks=TICKS)
        if not res.ok:
            failures.append(f"seed {seed}: {res.violations[0]}\n  replay: {res.replay_command()}")
    assert not failures, "\n".join(failures)
