"""The commit-log benchmark runs end to end (a smoke test; the figures are in the README)."""

from __future__ import annotations

import os
import subprocess
import sys

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "bench", "log_bench.py")


def test_log_bench_smoke(tmp_path):
    out = subprocess.run(
        [sys.executable, TOOL, "--messages", "3000", "--batches", "1,100",
         "--policies", "never,batch", "--rounds", "1", "--fsync-cap-syncs", "20",
         "--dir", str(tmp_path), "--rst"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert out.stderr.count("| framed ratio") == 4  # 2 policies x 2 batch sizes
    assert "read_records" in out.stderr
    assert "batch" in out.stdout and "never" in out.stdout  # the RST table
    assert os.listdir(tmp_path) == []  # it cleans up after itself
