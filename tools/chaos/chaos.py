"""Chaos runs against a real lb cluster: kill servers mid-replication, check nothing acked is lost.

    python tools/chaos/chaos.py --seed 7 --duration 60s
    python tools/chaos/chaos.py --seed 7 --duration 10m --servers 5 --nats 3 --out run7.json
    python tools/chaos/chaos.py --check history.json      # re-check a saved history

Prints the seed first (replay with the same --seed and options), a progress log, then a short
summary. Writes a JSON report (--out) and, with --history, the full history including every
replica's final log. Exit code: 0 when the checker found nothing, 1 on any violation, 2 when
the harness itself failed (for example the cluster never came up).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import traceback
from pathlib import Path

from lb.testing.chaos_checker import check, summary
from lb.testing.chaos_faults import FaultKind
from lb.testing.chaos_history import History
from lb.testing.chaos_runner import ChaosConfig, run_chaos


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "5m", "1h", "1m30s"."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}")
    return sum(float(a) * {"h": 3600, "m": 60, "s": 1}[b] for a, b in parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="default: a random seed (printed)")
    ap.add_argument("--duration", type=parse_duration, default=60.0,
                    help="time spent injecting faults, e.g. 90s, 10m (default 60s)")
    ap.add_argument("--servers", type=int, choices=(3, 5), default=3)
    ap.add_argument("--nats", type=int, choices=(1, 3), default=1,
                    help="nats-servers; 3 makes a NATS cluster and adds kill_nats faults")
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--rf", type=int, default=3, help="replication factor")
    ap.add_argument("--kinds", default="",
                    help="comma-separated fault kinds (default: all the setup supports): "
                         + ",".join(k.value for k in FaultKind))
    ap.add_argument("--interval", type=float, default=0.05,
                    help="pacing of each of the 6 publishers, seconds")
    ap.add_argument("--writable-bound", type=float, default=30.0,
                    help="seconds after the last heal within which every partition must "
                         "take an ALL ack")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="where data dirs and logs go (default: a temp dir, kept on failure)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even on success")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    ap.add_argument("--history", type=Path, default=None,
                    help="write the full history (with final logs) here")
    ap.add_argument("--check", type=Path, default=None,
                    help="only re-check a saved history file")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    if args.check is not None:
        h = History.load(args.check)
        report = check(h, writable_bound_s=args.writable_bound)
        print(summary(h, report))
        if args.out:
            args.out.write_text(json.dumps(report.to_json(), indent=1))
        return 0 if report.ok else 1

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"chaos seed {seed}", flush=True)
    kinds = tuple(FaultKind(k) for k in args.kinds.split(",") if k) or None
    if kinds and FaultKind.KILL_NATS in kinds and args.nats < 3:
        ap.error("kill_nats needs --nats 3")
    cfg = ChaosConfig(
        seed=seed, duration_s=args.duration, servers=args.servers, nats_servers=args.nats,
        streams=args.streams, partitions=args.partitions, replication_factor=args.rf,
        kinds=kinds, publish_interval_s=args.interval, writable_bound_s=args.writable_bound,
        work_dir=args.work_dir, keep=args.keep,
        log=None if args.quiet else (lambda line: print(line, flush=True)),
    )
    try:
        result = run_chaos(cfg)
    except Exception:
        traceback.print_exc()
        print(f"chaos seed {seed}: HARNESS FAILURE (not a checker verdict)", flush=True)
        return 2
    print(result.summary(), flush=True)
    if not result.report.ok or args.keep:
        print(f"  work dir (server logs, data dirs): {result.work_dir}")
    if args.out:
        args.out.write_text(json.dumps(result.to_json(), indent=1))
        print(f"  report: {args.out}")
    if args.history:
        result.history.save(args.history)
        print(f"  history: {args.history}")
    return 0 if result.report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
