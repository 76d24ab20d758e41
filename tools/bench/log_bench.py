"""Commit-log append/read benchmark against a plain Python write loop.

Appends N messages of S bytes in batches of 1, 10, 100 and 1000 under each fsync policy, and
compares with a plain loop that ``os.write``s the same payload bytes with the same fsync cadence.
Each case runs ``--rounds`` times, lb and the plain loops alternating, and reports medians.
Runs where every batch is fsynced are capped (``--fsync-cap-syncs``) because 1M fsyncs would take
hours; the output says when a run was capped. Then measures ``read_records`` and ``read_raw``.

    python tools/bench/log_bench.py [--messages 1000000] [--size 256] [--rst]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass

from lb.storage import CommitLog, FsyncPolicy, LogOptions


@dataclass
class Result:
    policy: str
    batch: int
    messages: int
    capped: bool
    lb_s: float
    plain_s: float
    framed_s: float
    syncs: int

    @property
    def lb_rate(self) -> float:
        return self.messages / self.lb_s

    @property
    def plain_rate(self) -> float:
        return self.messages / self.plain_s

    @property
    def framed_rate(self) -> float:
        return self.messages / self.framed_s


def run_lb(path: str, policy: FsyncPolicy, n: int, batch: int, body: bytes) -> tuple[float, int]:
    log = CommitLog.open(path, LogOptions(fsync=policy))
    bodies = [body] * batch
    syncs = 0
    t0 = time.perf_counter()
    done = 0
    while done < n:
        r = log.append_bodies(bodies, None, now_ns=time.monotonic_ns())
        if r.sync_due:
            log.sync()
            syncs += 1
        done += batch
    elapsed = time.perf_counter() - t0
    log.close()
    return elapsed, syncs


def run_plain(path: str, policy: FsyncPolicy, n: int, batch: int, body: bytes,
              framed: bool = False) -> float:
    """The baseline: one ``os.write`` per batch of the same payload, same fsync cadence.

    ``framed``: also prefix every message with a 4-byte length (a minimal per-message loop).
    """
    fd = os.open(os.path.join(path, "plain.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    payload_parts = [body] * batch
    pack = struct.Struct(">I").pack
    unsynced = 0
    since: int | None = None
    t0 = time.perf_counter()
    done = 0
    while done < n:
        if framed:
            parts = []
            for b in payload_parts:
                parts.append(pack(len(b)))
                parts.append(b)
            os.write(fd, b"".join(parts))
        else:
            os.write(fd, b"".join(payload_parts))
        unsynced += batch
        now = time.monotonic_ns()
        if since is None:
            since = now
        k = policy.kind
        if (k == "batch" or (k == "messages" and unsynced >= policy.messages)
                or (k == "interval" and now - since >= policy.interval_ns)):
            os.fsync(fd)
            unsynced = 0
            since = None
        done += batch
    elapsed = time.perf_counter() - t0
    os.close(fd)
    return elapsed


def measure_reads(path: str, n: int, body: bytes) -> tuple[float, float]:
    log = CommitLog.open(path, LogOptions())
    log.append_bodies([body] * 1000, None, now_ns=1)
    while log.next_offset < n:
        log.append_bodies([body] * 1000, None, now_ns=1)
    t0 = time.perf_counter()
    off = 0
    count = 0
    while off < log.next_offset:
        recs = log.read_records(off, 1 << 20)
        count += len(recs)
        off = recs[-1].offset + 1
    rec_rate = count / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    off = 0
    nbytes = 0
    from lb.storage import batch as fmt

    while off < log.next_offset:
        raw = log.read_raw(off, 1 << 20)
        nbytes += len(raw)
        pos = 0
        while pos < len(raw):  # find the next offset as a follower would
            h = fmt.parse_header(raw, pos)
            pos += h.size
        off = h.next_offset
    raw_mbps = nbytes / (time.perf_counter() - t0) / 1e6
    log.close()
    return rec_rate, raw_mbps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batches", default="1,10,100,1000")
    ap.add_argument("--policies", default="never,interval:10ms,messages:1000,batch")
    ap.add_argument("--fsync-cap-syncs", type=int, default=2_000,
                    help="cap runs that fsync every batch at this many fsyncs")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each case (lb and plain alternating); medians are reported")
    ap.add_argument("--rst", action="store_true", help="print an RST table")
    args = ap.parse_args(argv)
    root = tempfile.mkdtemp(prefix="lb-bench-", dir=args.dir)
    body = bytes(range(256)) * (args.size // 256) + bytes(args.size % 256)
    results: list[Result] = []
    try:
        for pol_text in args.policies.split(","):
            policy = FsyncPolicy.parse(pol_text)
            for batch in (int(b) for b in args.batches.split(",")):
                n = args.messages
                capped = False
                if policy.kind == "batch" and n // batch > args.fsync_cap_syncs:
                    n = args.fsync_cap_syncs * batch
                    capped = True
                n -= n % batch
                lb_times, plain_times, framed_times = [], [], []
                for rnd in range(args.rounds):  # interleaved, so load changes hit all three
                    d_lb = os.path.join(root, f"lb-{len(results)}-{rnd}")
                    d_plain = os.path.join(root, f"plain-{len(results)}-{rnd}")
                    os.makedirs(d_plain)
                    lb_s, syncs = run_lb(d_lb, policy, n, batch, body)
                    plain_s = run_plain(d_plain, policy, n, batch, body)
                    os.unlink(os.path.join(d_plain, "plain.log"))
                    framed_s = run_plain(d_plain, policy, n, batch, body, framed=True)
                    shutil.rmtree(d_lb)
                    shutil.rmtree(d_plain)
                    lb_times.append(lb_s)
                    plain_times.append(plain_s)
                    framed_times.append(framed_s)
                r = Result(str(policy), batch, n, capped, statistics.median(lb_times),
                           statistics.median(plain_times), statistics.median(framed_times),
                           syncs)
                results.append(r)
                print(f"{r.policy:>16} batch={batch:<5} n={n:<8}{' (capped)' if capped else ''}"
                      f" lb {r.lb_rate:>10,.0f} msg/s {r.lb_rate * args.size / 1e6:7.1f} MB/s"
                      f" | plain {r.plain_rate:>10,.0f} msg/s"
                      f" | ratio {r.lb_rate / r.plain_rate:.2f}"
                      f" | framed ratio {r.lb_rate / r.framed_rate:.2f}"
                      f" | fsyncs {syncs}", file=sys.stderr, flush=True)
        rec_rate, raw_mbps = measure_reads(os.path.join(root, "read"), args.messages, body)
        print(f"read_records {rec_rate:,.0f} msg/s; read_raw {raw_mbps:,.0f} MB/s",
              file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.rst:
        print_rst(results, rec_rate, raw_mbps, args)
    return 0


def print_rst(results: list[Result], rec_rate: float, raw_mbps: float,
              args: argparse.Namespace) -> None:
    rows = [("policy", "batch", "messages", "lb msg/s", "lb MB/s", "plain msg/s", "ratio",
             "ratio framed")]
    for r in results:
        rows.append((r.policy.replace("interval:10000000ns", "interval 10ms"), str(r.batch),
                     f"{r.messages:,}" + (" *" if r.capped else ""), f"{r.lb_rate:,.0f}",
                     f"{r.lb_rate * args.size / 1e6:.1f}", f"{r.plain_rate:,.0f}",
                     f"{r.lb_rate / r.plain_rate:.2f}", f"{r.lb_rate / r.framed_rate:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    sep = "  ".join("=" * w for w in widths)
    print(sep)
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print(sep)
    print(sep)
    print()
    print("plain: one os.write of the joined payload per batch; framed: the same plus a 4-byte "
          "length per message (struct.pack in a loop). Same fsync cadence as the log.")
    print(f"``*`` capped: fsync per batch, at most {args.fsync_cap_syncs:,} fsyncs per run. "
          f"{args.size}-byte messages. Reads: ``read_records`` {rec_rate:,.0f} msg/s, "
          f"``read_raw`` {raw_mbps:,.0f} MB/s.")


if __name__ == "__main__":
    raise SystemExit(main())
