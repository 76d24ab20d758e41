from __future__ import annotations

import json
import os
import subprocess
import sys

from storage_helpers import fill, flip_byte, segment_files, small_options

from lb.storage import CommitLog

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "inspect_log.py")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_inspect_log_json_and_human(tmp_path):
    log = CommitLog.open(tmp_path, small_options())
    fill(log, 10, 3, epoch=2)
    log.set_hw(20)
    log.close()
    out = run(str(tmp_path), "--json", "--records")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["hw"] == 20 and info["leader_epochs"] == [[2, 0]]
    segs = info["segments"]
    assert segs[0]["base_offset"] == 0 and segs[-1]["next_offset"] == 30
    assert sum(s["records"] for s in segs) == 30
    assert all(b["crc_ok"] for s in segs for b in s["batches"])
    human = run(str(tmp_path), "--batches", "--index")
    assert human.returncode == 0 and "00000000000000000000.log" in human.stdout
    flip_byte(segment_files(str(tmp_path))[0], 60)
    bad = run(str(tmp_path))
    assert bad.returncode == 1 and "CRC" in bad.stdout
