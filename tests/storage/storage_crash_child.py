"""Writer process for the crash test: appends until killed, printing durable offsets.

Usage: python storage_crash_child.py DIR POLICY SEED
Prints "A <last_offset>" after each append and "D <durable_offset>" after each sync the policy
asked for, flushing stdout each time so the parent sees them before a SIGKILL.
"""

from __future__ import annotations

import random
import sys

from lb.storage import CommitLog, FsyncPolicy, LogOptions

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from storage_helpers import body_for


def main() -> None:
    path, policy, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    opts = LogOptions(segment_bytes_max=20_000, index_interval_bytes=512,
                      fsync=FsyncPolicy.parse(policy))
    log = CommitLog.open(path, opts)
    now = 1_000_000
    out = sys.stdout
    while True:
        first = log.next_offset
        n = rng.randint(1, 20)
        now += 1_000_000
        r = log.append_bodies([body_for(first + i) for i in range(n)], None, now_ns=now)
        out.write(f"A {r.last_offset}\n")
        if r.sync_due:
            out.write(f"D {log.sync()}\n")
        out.flush()


if __name__ == "__main__":
    main()
