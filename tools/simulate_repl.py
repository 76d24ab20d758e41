"""Run the deterministic partition-replication simulator for one seed or a range of seeds.

    python tools/simulate_repl.py --seed 42 --replicas 5 --verbose   # replay one run
    python tools/simulate_repl.py --seeds 0..299                     # sweep 3 and 5 replicas
    python tools/simulate_repl.py --seeds 0..299 --bug leader_late_expand   # a broken variant
    python tools/simulate_repl.py --seeds 0..299 --raft-controller  # controller = 3-node Raft

On failure it prints the failing seed, its violations and the command that replays it, and
exits with status 1.
"""

from __future__ import annotations

import argparse
import time

from lb.testing.repl_sim import BUGS, run_seed


def _parse_range(text: str) -> range:
    lo, sep, hi = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError("expected A..B (inclusive)")
    return range(int(lo), int(hi) + 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--seed", type=int, help="replay one seed")
    group.add_argument("--seeds", type=_parse_range, help="sweep seeds A..B (inclusive)")
    ap.add_argument("--replicas", type=int, choices=[1, 2, 3, 4, 5], default=None,
                    help="replication factor (default: 3 for --seed; both 3 and 5 for --seeds)")
    ap.add_argument("--ticks", type=int, default=600, help="fault-phase length in ticks")
    ap.add_argument("--bug", choices=sorted(b for b in BUGS if b), default="",
                    help="run a deliberately broken variant (the checkers should fail it)")
    ap.add_argument("--raft-controller", action="store_true",
                    help="run the controller as a 3-node Raft group on the simulated network")
    ap.add_argument("--verbose", "-v", action="store_true",
                    help="print stats and crash/partition/leader events")
    args = ap.parse_args(argv)

    if args.seed is not None:
        seeds = [args.seed]
        sizes = [args.replicas or 3]
    else:
        seeds = list(args.seeds)
        sizes = [args.replicas] if args.replicas else [3, 5]

    failures = 0
    runs = 0
    started = time.perf_counter()
    for seed in seeds:
        for replicas in sizes:
            res = run_seed(seed, replicas=replicas, ticks=args.ticks, bug=args.bug,
                           verbose=args.verbose, raft_controller=args.raft_controller)
            runs += 1
            if args.seed is not None or args.verbose:
                print(f"seed={seed} replicas={replicas} ok={res.ok} "
                      f"liveness_ticks={res.liveness_ticks} trace={res.trace_hash}")
                print(f"  stats: {res.stats}")
                if args.verbose:
                    for e in res.events:
                        print(f"  {e}")
            if not res.ok:
                failures += 1
                print(f"FAIL seed={seed} replicas={replicas}")
                for v in res.violations:
                    print(f"  {v}")
                print(f"  replay: {res.replay_command()}")
    elapsed = time.perf_counter() - started
    per_run_ms = 1000 * elapsed / max(runs, 1)
    print(f"{runs} runs, {failures} failed, {elapsed:.1f} s ({per_run_ms:.0f} ms/run)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
