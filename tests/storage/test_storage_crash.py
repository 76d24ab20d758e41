"""Crash test: a real writer process is SIGKILLed mid-append under each fsync policy.

After reopening, the log must be a prefix of what the writer wrote (offsets 0..LEO-1 with the
exact bytes) and must hold every offset the writer reported durable. SIGKILL does not lose the
page cache, so this checks the recovery logic and the prefix property, not real power-loss
durability (that needs a VM or dm-flakey; out of scope here).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest
from storage_helpers import body_for

from lb.storage import CommitLog, LogOptions

CHILD = os.path.join(os.path.dirname(__file__), "storage_crash_child.py")
POLICIES = ["never", "batch", "interval:3ms", "messages:50"]


def run_and_kill(path: str, policy: str, seed: int, lines_before_kill: int) -> int:
    """Run the child until it printed ``lines_before_kill`` lines, SIGKILL it; return the
    highest durable offset it reported."""
    proc = subprocess.Popen([sys.executable, CHILD, path, policy, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    durable = -1
    seen = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            kind, value = line.split()
            if kind == "D":
                durable = max(durable, int(value))
            seen += 1
            if seen >= lines_before_kill:
                break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # the child may have printed more durable offsets before it died
        rest = proc.stdout.read() if proc.stdout else ""
        for line in rest.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "D":
                durable = max(durable, int(parts[1]))
    return durable


@pytest.mark.parametrize("policy", POLICIES)
def test_sigkill_during_appends(tmp_path, policy):
    rng = random.Random(f"crash-{policy}")
    path = str(tmp_path / "p")
    total_durable = -1
    for round_no in range(3):  # kill, reopen, continue writing, kill again
        durable = run_and_kill(path, policy, rng.randrange(1 << 30), rng.randint(5, 400))
        total_durable = max(total_durable, durable)
        log = CommitLog.open(path, LogOptions(segment_bytes_max=20_000,
                                              index_interval_bytes=512))
        try:
            recs = log.read_records(0, 1 << 26)
            assert [r.offset for r in recs] == list(range(log.next_offset)), round_no
            assert all(r.body == body_for(r.offset) for r in recs), "not a prefix"
            assert log.newest_offset >= total_durable, (log.newest_offset, total_durable)
            if policy != "never":
                assert total_durable >= 0 or log.next_offset < 60
        finally:
            log.close()
