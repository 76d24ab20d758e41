"""P8 (failover under load) of the benchmark tool, once per system, as a real subprocess of
``tools/bench/bench.py --workload P8 --vs-jetstream --rounds 1``.

Real servers (one nats-server and three lb servers; a 3-node JetStream cluster), real SIGKILLs.
Correctness only: the leader changed, a message published after the kill was acked, and no
acked message is missing from the new leader. No timing assertion: the machine is shared and
JetStream's election alone takes 4-9 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench_kit import processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tools" / "bench" / "bench.py"


def test_bench_p8_failover_lb_and_jetstream_lose_no_acked_message(tmp_path: Path) -> None:
    out = tmp_path / "p8.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--workload", "P8", "--vs-jetstream", "--rounds", "1",
         "--p8-warmup", "0.5", "--p8-after", "0.3", "--json", str(out), "--progress", "off",
         "--tmp", str(tmp_path)],
        capture_output=True, text=True, timeout=180, cwd=ROOT, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] is True
    (summary,) = report["workloads"]
    assert summary["workload"]["name"] == "P8"
    assert set(summary["rounds"]) == {"lb", "js"}
    for system, cases in summary["rounds"].items():
        (case,) = cases
        assert case["ok"], (system, case["problems"])
        assert case["leader_changed"] and case["new_leader"] != case["killed"], system
        # A message whose publish started after the kill was acked (ALL / R3).
        assert case["failover_s"] > 0 and case["first_sent_after_kill_s"] >= 0, system
        assert case["acked_after_kill_sent_after_kill"] >= 1, system
        assert case["acked_before_kill"] > 0, system
        assert case["missing_acked_before_kill"] == 0, system
        assert case["missing_acked_after_kill"] == 0, system
        assert case["read_back"] >= case["acked"], system
    assert "P8" in report["rst_p8"]
    assert processes_mentioning(str(tmp_path)) == []
