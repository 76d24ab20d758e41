"""Run the deterministic Raft simulator for one seed or a range of seeds.

    python tools/simulate.py --seed 42 --nodes 5 --verbose   # replay one run
    python tools/simulate.py --seeds 0..499                  # sweep 3- and 5-node clusters

On failure it prints the failing seed, its violations and the command that replays it, and exits
with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time

from lb.testing.raft_sim import MODES, run_seed


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
    ap.add_argument(
        "--nodes",
        type=int,
        choices=[1, 2, 3, 4, 5, 6, 7],
        default=None,
        help="cluster size (default: 3 for --seed; both 3 and 5 for --seeds)",
    )
    ap.add_argument("--ticks", type=int, default=1500, help="fault-phase length in ticks")
    ap.add_argument("--mode", choices=MODES, default=None, help="force a cluster-formation mode")
    ap.add_argument("--verbose", action="store_true", help="print crash/partition/conf events")
    args = ap.parse_args(argv)

    if args.seed is not None:
        seeds = [args.seed]
        sizes = [args.nodes or 3]
    else:
        seeds = list(args.seeds)
        sizes = [args.nodes] if args.nodes else [3, 5]

    failures = 0
    started = time.perf_counter()
    runs = 0
    for seed in seeds:
        for nodes in sizes:
            res = run_seed(
                seed, nodes=nodes, ticks=args.ticks, mode=args.mode, verbose=args.verbose
            )
            runs += 1
            if args.seed is not None or args.verbose:
                print(
                    f"seed={seed} nodes={nodes} mode={res.mode} ok={res.ok} "
                    f"liveness_ticks={res.liveness_ticks} trace={res.trace_hash}"
                )
                print(f"  stats: {res.stats}")
            if not res.ok:
                failures += 1
                print(f"FAIL seed={seed} nodes={nodes} mode={res.mode}")
                for v in res.violations:
                    print(f"  {v}")
                cmd = res.replay_command()
                if args.mode:
                    cmd += f" --mode {args.mode}"
                print(f"  replay: {cmd} --verbose")
    elapsed = time.perf_counter() - started
    per_run_ms = 1000 * elapsed / max(runs, 1)
    print(f"{runs} runs, {failures} failed, {elapsed:.1f} s ({per_run_ms:.0f} ms/run)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
