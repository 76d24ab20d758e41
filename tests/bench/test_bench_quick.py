"""Smoke test of the benchmark tool (tools/bench/bench.py --quick) as a real subprocess.

It starts real nats-servers, lb servers and JetStream, so it checks the whole tool end to end.
Correctness only: every message published is acked and stored, and every stored message is
read back. No timing assertion: CI machines are shared and slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench_kit import processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tools" / "bench" / "bench.py"


def test_bench_quick_all_messages_acked_and_received(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out), "--progress", "off",
         "--tmp", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=ROOT, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] is True
    seen = set()
    for summary in report["workloads"]:
        wl = summary["workload"]
        for system, cases in summary["rounds"].items():
            seen.add((wl["path"], system))
            for case in cases:
                assert case["ok"], case["problems"]
                pub = case["publish"]
                assert pub["errors"] == 0
                assert pub["done"] == wl["messages"]
                assert pub["stored"] == wl["messages"]
                if wl["path"] == "nats-raw":
                    assert pub["lost"] == 0
                else:
                    assert pub["p99.9_us"] > 0  # a latency was recorded for the acks
                if wl["consume"]:
                    assert case["consume"]["done"] == wl["messages"]
                    assert case["consume"]["errors"] == 0
    assert {("publish-async", "lb"), ("publish-async", "js"), ("grpc-publish", "lb"),
            ("nats-envelope", "lb"), ("nats-raw", "lb")} <= seen
    # Every process the bench started is gone: no server or worker outlives it.
    assert processes_mentioning(str(tmp_path)) == []
