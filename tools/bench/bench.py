#!/usr/bin/env python3
"""Publish/consume benchmark of lb, optionally side by side with NATS JetStream.

Liftbridge's own bench options (``--messages``, ``--message-size``, ``--pub-batch`` = messages
in flight, ``--concurrent`` = publisher processes, ``--partitions``, ``--replication-factor``,
``--ack-policy``) and a choice of publish path:

* ``publish-async``: the PublishAsync bidi stream, acks matched by correlationId;
* ``grpc-publish``: unary Publish with a deadline (waits for the ack), ``--pub-batch`` callers;
* ``nats-envelope``: Liftbridge envelopes published on NATS with an ack inbox;
* ``nats-raw``: plain NATS messages (no ack) at ``--rate`` msg/s; loss = sent - stored.

Each run starts its own servers on 127.0.0.1 and free ports (one nats-server plus 1 lb server,
or 3 for ``--replication-factor 3``), creates the stream, starts ``--concurrent`` publisher
processes together, then (unless ``--no-consume``) reads everything back from EARLIEST. It
reports msgs/s, MB/s (payload), exact latency percentiles from every message's send-to-ack time,
and CPU µs per message of the servers (from /proc/<pid>/stat) and of the clients.

``--vs-jetstream`` runs the same workload against a JetStream it starts itself (file storage;
1 nats-server, or a 3-node cluster for R3), with nats-py clients of the same shape
(``js.publish_async`` with N in flight, pull consumers), interleaved over ``--rounds`` rounds, and
prints medians with lb/JetStream ratios. ``--suite readme`` runs the README's workloads P1-P8
(P8, failover under load, lives in ``failover_bench.py``; ``--workload P8`` runs it alone);
``--quick`` is the CI smoke test (correctness only, under a minute).

    python tools/bench/bench.py --path publish-async --messages 50000 --pub-batch 100 \\
        --vs-jetstream --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repo root, for `lb` when not installed

import bench_servers as srv  # noqa: E402
import failover_bench as p8  # noqa: E402

PATHS = ("publish-async", "grpc-publish", "nats-envelope", "nats-raw")
ACK_POLICIES = {"leader": 0, "all": 1, "none": 2}
SETTLE_S = 2.0  # nats-raw: stored count unchanged this long = done
READY_TIMEOUT_S = 60.0
STALL_S = 20.0
P6_KEEP_UP = 0.95  # a phase whose message count does not move this long has failed


@dataclass(frozen=True)
class Workload:
    """One benchmark configuration (what both systems run)."""

    name: str = "custom"
    path: str = "publish-async"
    messages: int = 20_000
    message_size: int = 256
    pub_batch: int = 100
    concurrent: int = 1
    partitions: int = 1
    replication_factor: int = 1
    ack_policy: str = "leader"
    consume: bool = True
    publish: bool = True
    rate: float = 0.0
    fsync: str = ""  # lb streams.fsync.policy ("" = server default); JetStream: "batch"/"always"
    #                  turn on sync_interval: always


# ------------------------------------------------------------------------------------------
# Progress and worker plumbing
# ------------------------------------------------------------------------------------------


class Progress:
    """One stderr line, rewritten with ``\\r``; silent when stderr is not a terminal unless
    forced (CI logs stay readable)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0

    def show(self, label: str, done: int, total: int, t0: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and done < total:
            return
        self._last = now
        rate = done / max(now - t0, 1e-9)
        width = 30
        fill = int(width * done / max(total, 1))
        bar = "#" * fill + "." * (width - fill)
        sys.stderr.write(f"\r{label:<34} [{bar}] {done}/{total} {rate:>9,.0f} msg/s ")
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


class Worker:
    """A bench_worker.py child: reads its stdout lines on a thread."""

    def __init__(self, spec: dict[str, Any], log: Path) -> None:
        self.spec = spec
        self.ready = threading.Event()
        self.finished = threading.Event()
        self.progress = 0
        self.result: dict[str, Any] | None = None
        self.proc = srv.spawn(
            [sys.executable, str(HERE / "bench_worker.py"), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "ab"),  # noqa: SIM115
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line == "ready":
                self.ready.set()
            elif line.startswith("progress "):
                self.progress = int(line.split()[1])
            elif line.startswith("result "):
                self.result = json.loads(line[7:])
        self.ready.set()  # EOF: do not leave the parent waiting
        self.finished.set()

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        srv.kill_group(self.proc, timeout_s=2)


def run_workers(
    specs: list[dict[str, Any]], case_dir: Path, procs: srv.Procs, label: str,
    progress: Progress, timeout_s: float,
) -> tuple[list[dict[str, Any]], dict[str, float], float]:
    """Start workers, release them together, wait for all; returns their results, the
    servers' CPU seconds used meanwhile, and the wall time from go to the last result."""
    workers = [Worker(s, case_dir / f"worker-{label.split()[-1]}-{s['worker']}.log")
               for s in specs]
    try:
        for w in workers:
            if not w.ready.wait(READY_TIMEOUT_S) or w.proc.poll() is not None:
                raise RuntimeError(f"worker {w.spec['worker']} did not get ready")
        waited_s = wait_quiet(procs, label, progress) if QUIET_CORES_MAX else 0.0
        spies = start_profilers(procs, label) if PROFILE_DIR else []
        cpu0 = procs.cpu()
        busy0 = machine_busy_s() - own_cpu_s()
        t0 = time.monotonic()
        for w in workers:
            w.go()
        total = sum(int(s["messages"]) for s in specs)
        deadline = t0 + timeout_s
        last, moved = -1, t0
        while not all(w.finished.is_set() for w in workers):
            now = time.monotonic()
            done = sum(w.progress for w in workers)
            if done != last:
                last, moved = done, now
            if now > deadline:
                raise TimeoutError(f"{label}: workers still running after {timeout_s:.0f} s")
            if now - moved > STALL_S:
                raise TimeoutError(f"{label}: no progress for {STALL_S:.0f} s at {done}/{total}")
            progress.show(label, done, total, t0)
            time.sleep(0.05)
        wall = time.monotonic() - t0
        cpu1 = procs.cpu()
        busy1 = machine_busy_s() - own_cpu_s()
        stop_profilers(spies)
        progress.show(label, sum((w.result or {}).get("done", 0) for w in workers), total, t0)
        progress.end()
        results = []
        for w in workers:
            if w.result is None:
                raise RuntimeError(f"worker {w.spec['worker']} exited without a result")
            results.append(w.result)
        cpu = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
        # Everything else the machine did meanwhile (other engineers' tests): busy CPU minus
        # our servers, our workers' timed regions and this process.
        others = busy1 - busy0 - sum(cpu.values()) - sum(r["cpu_s"] for r in results)
        cpu["others_cores"] = max(0.0, others) / max(wall, 1e-9)
        cpu["waited_for_quiet_s"] = waited_s
        return results, cpu, wall
    finally:
        for w in workers:
            w.stop()
        if PROFILE_DIR:
            stop_profilers(spies)


QUIET_CORES_MAX = 0.0  # --wait-quiet: before each phase, wait until others use less than this
QUIET_WAIT_MAX_S = 90.0


def wait_quiet(procs: srv.Procs, label: str, progress: Progress) -> float:
    """Wait (at most QUIET_WAIT_MAX_S) until processes that are not ours use fewer than
    QUIET_CORES_MAX cores over a 1 s window; returns the seconds waited. Our servers and
    workers are idle meanwhile, and their CPU is subtracted anyway."""
    t0 = time.monotonic()
    while True:
        b0 = machine_busy_s() - own_cpu_s() - sum(procs.cpu().values())
        time.sleep(1.0)
        b1 = machine_busy_s() - own_cpu_s() - sum(procs.cpu().values())
        waited = time.monotonic() - t0
        if b1 - b0 <= QUIET_CORES_MAX or waited > QUIET_WAIT_MAX_S:
            return waited - 1.0
        if progress.enabled:
            sys.stderr.write(f"\r{label:<34} waiting for a quieter machine: others use "
                             f"{b1 - b0:.1f} cores ")
            sys.stderr.flush()


def machine_busy_s() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / srv.CLK_TCK


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


PROFILE_DIR: Path | None = None  # --profile: py-spy every lb server during every phase


def start_profilers(procs: srv.Procs, label: str) -> list[tuple[Any, Path]]:
    """One ``py-spy record`` per lb server (collapsed stacks, 200 Hz, non-blocking)."""
    assert PROFILE_DIR is not None
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    spies = []
    safe = label.replace("/", "-").replace(" ", "_")
    for name, p in procs.procs.items():
        if not name.startswith("lb"):
            continue
        out = PROFILE_DIR / f"{safe}-{name}.txt"
        spy = srv.spawn([py_spy_binary(), "record", "--pid", str(p.pid), "--format", "raw",
                         "--rate", "200", "--nonblocking", "--function", "-o", str(out)],
                        log=PROFILE_DIR / f"{safe}-{name}.log")
        spies.append((spy, out))
    time.sleep(0.5)  # py-spy attaches before the clock starts
    return spies


def py_spy_binary() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise SystemExit("--profile needs py-spy: pip install py-spy (a dev tool)")
    return found


def stop_profilers(spies: list[tuple[Any, Path]]) -> None:
    for spy, _ in spies:
        if spy.poll() is None:
            os.killpg(spy.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
    for spy, _ in spies:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(15)
        srv.kill_group(spy, timeout_s=1)
    spies.clear()


# ------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------


def percentile(sorted_values: array[int] | list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a sorted sequence."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[k])


def load_latencies(specs: list[dict[str, Any]]) -> list[int]:
    out: array[int] = array("q")
    for s in specs:
        with open(s["lat_file"], "rb") as f:
            out.frombytes(f.read())
    return sorted(out)


def phase_figures(
    wl: Workload, results: list[dict[str, Any]], cpu: dict[str, float], lat: list[int],
    kind: str,
) -> dict[str, Any]:
    done = sum(r["done"] for r in results)
    t0 = min(r["t0_ns"] for r in results if r["t0_ns"])
    t1 = max(r["t1_ns"] for r in results)
    secs = max((t1 - t0) / 1e9, 1e-9)
    rate = done / secs
    per = 1e6 / max(done, 1)
    others_cores = cpu.pop("others_cores", 0.0)
    waited_s = cpu.pop("waited_for_quiet_s", 0.0)
    lb_cpu = sum(v for k, v in cpu.items() if k.startswith("lb"))
    nats_cpu = sum(v for k, v in cpu.items() if k.startswith("nats"))
    fig: dict[str, Any] = {
        "messages": sum(r["messages"] for r in results),
        "done": done,
        "errors": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
        "seconds": secs,
        "msgs_per_s": rate,
        "mb_per_s": rate * wl.message_size / 1e6,
        "srv_cpu_us_per_msg": (lb_cpu + nats_cpu) * per,
        "nats_cpu_us_per_msg": nats_cpu * per,
        "client_cpu_us_per_msg": sum(r["cpu_s"] for r in results) * per,
        "others_cores": others_cores,
        "waited_for_quiet_s": waited_s,
    }
    if kind == "lb":
        fig["lb_cpu_us_per_msg"] = lb_cpu * per
    if lat:
        fig["p50_us"] = percentile(lat, 50) / 1e3
        fig["p99_us"] = percentile(lat, 99) / 1e3
        fig["p99.9_us"] = percentile(lat, 99.9) / 1e3
        fig["max_us"] = lat[-1] / 1e3
    return fig


# ------------------------------------------------------------------------------------------
# One case: one system, one workload, fresh servers
# ------------------------------------------------------------------------------------------


def start_system(kind: str, wl: Workload, base: Path) -> tuple[srv.Procs, list[dict[str, Any]]]:
    if kind == "lb":
        config: dict[str, Any] = {}
        if wl.fsync:
            config["streams.fsync.policy"] = wl.fsync
        procs = srv.start_lb(base, 3 if wl.replication_factor > 1 else 1, config)
        try:
            table = srv.setup_lb(procs, wl.partitions, wl.replication_factor)
        except BaseException:
            procs.stop()
            raise
    else:
        procs = srv.start_jetstream(base, wl.replication_factor,
                                    sync_always=wl.fsync in ("batch", "always"))
        try:
            table = srv.setup_jetstream(procs, wl.partitions, wl.replication_factor)
            for p in table:
                p["grpc_port"] = 0
        except BaseException:
            procs.stop()
            raise
    return procs, table


def stored_counts(kind: str, procs: srv.Procs, table: list[dict[str, Any]]) -> list[int]:
    if kind == "lb":
        return srv.lb_counts(procs, table)
    return srv.js_counts(procs, len(table))


def wait_stored(
    kind: str, procs: srv.Procs, table: list[dict[str, Any]], want: int
) -> tuple[int, float]:
    """Poll the stored total until it reaches ``want`` or stops moving for SETTLE_S; returns
    it and how long it took (the backlog the server still had when the publishers ended)."""
    t0 = last_change = time.monotonic()
    last = -1
    while True:
        total = sum(stored_counts(kind, procs, table))
        now = time.monotonic()
        if total >= want:
            return total, now - t0
        if total != last:
            last, last_change = total, now
        elif now - last_change > SETTLE_S:
            return total, last_change - t0
        time.sleep(0.05)


def run_case(kind: str, wl: Workload, tmp: Path, label: str, progress: Progress) -> dict[str, Any]:
    """Start fresh servers, publish, (check stored), consume, stop everything."""
    case_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=tmp))
    procs, table = start_system(kind, wl, case_dir)
    out: dict[str, Any] = {"system": kind, "ok": True, "problems": []}
    try:
        base = {
            "system": kind, "path": wl.path, "message_size": wl.message_size,
            "pub_batch": wl.pub_batch, "ack_policy": ACK_POLICIES[wl.ack_policy],
            "nats_url": procs.nats_url, "partitions": table, "rate": wl.rate,
        }
        if wl.publish:
            n = wl.messages
            share = [n // wl.concurrent + (1 if k < n % wl.concurrent else 0)
                     for k in range(wl.concurrent)]
            specs = [
                {**base, "op": "publish", "worker": k, "messages": share[k],
                 "lat_file": str(case_dir / f"pub-{k}.lat"),
                 "rate": wl.rate / wl.concurrent if wl.rate else 0}
                for k in range(wl.concurrent)
            ]
            timeout = 120 + n / 500
            results, cpu, _ = run_workers(specs, case_dir, procs, f"{label} publish",
                                          progress, timeout)
            lat = load_latencies(specs)
            pub = phase_figures(wl, results, cpu, lat, kind)
            stored, drain_s = wait_stored(kind, procs, table, n)
            pub["stored"] = stored
            pub["drain_s"] = drain_s
            # What the server absorbed: stored messages over publish time plus backlog time.
            pub["ingest_msgs_per_s"] = stored / (pub["seconds"] + drain_s)
            out["publish"] = pub
            if wl.path == "nats-raw" or wl.ack_policy == "none":
                pub["lost"] = n - stored
            else:
                if pub["errors"]:
                    out["problems"].append(f"publish: {pub['errors']} errors: {pub['first_error']}")
                if pub["done"] != n:
                    out["problems"].append(f"publish: {pub['done']} of {n} acked")
                if stored != n:
                    out["problems"].append(f"publish: {stored} of {n} stored")
        if wl.consume:
            counts = stored_counts(kind, procs, table)
            ctable = [{**p, "count": c} for p, c in zip(table, counts, strict=True)]
            spec = {**base, "partitions": ctable, "op": "consume", "worker": 0,
                    "messages": sum(counts), "lat_file": str(case_dir / "consume.lat")}
            results, cpu, _ = run_workers([spec], case_dir, procs, f"{label} consume",
                                          progress, 120 + sum(counts) / 500)
            con = phase_figures(wl, results, cpu, [], kind)
            out["consume"] = con
            if con["errors"] or con["done"] != sum(counts):
                out["problems"].append(
                    f"consume: {con['done']} of {sum(counts)}, {con['errors']} errors: "
                    f"{con['first_error']}")
            if wl.publish and wl.path != "nats-raw" and sum(counts) != wl.messages:
                out["problems"].append(f"consume: {sum(counts)} stored of {wl.messages}")
    except Exception as exc:
        out["problems"].append(f"{type(exc).__name__}: {exc}")
    finally:
        procs.stop()
        if out["problems"]:  # the servers' and workers' logs, for the report
            out["logs"] = procs.logs_tail()
        subprocess.run(["rm", "-rf", str(case_dir)], check=False)
    out["ok"] = not out["problems"]
    return out


# ------------------------------------------------------------------------------------------
# Rounds, medians, ratios
# ------------------------------------------------------------------------------------------

FIGURES = ("msgs_per_s", "mb_per_s", "p50_us", "p99_us", "p99.9_us", "srv_cpu_us_per_msg",
           "lb_cpu_us_per_msg", "nats_cpu_us_per_msg", "client_cpu_us_per_msg", "lost",
           "drain_s", "ingest_msgs_per_s", "others_cores")


def medians(cases: list[dict[str, Any]], phase: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in FIGURES:
        vals = [c[phase][f] for c in cases if c["ok"] and phase in c and f in c[phase]]
        if vals:
            out[f] = statistics.median(vals)
    return out


def run_workload(wl: Workload, systems: list[str], rounds: int, tmp: Path,
                 progress: Progress) -> dict[str, Any]:
    """Run ``wl`` on every system, interleaved, ``rounds`` times; medians and ratios."""
    per: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for r in range(rounds):
        for s in systems:
            if per[s] and not per[s][0]["ok"]:
                continue  # it failed in round 1: do not spend the other rounds on it
            label = f"{wl.name} {s}/{wl.path} r{r + 1}/{rounds}"
            per[s].append(run_case(s, wl, tmp, label, progress))
    summary: dict[str, Any] = {"workload": asdict(wl), "rounds": per, "medians": {}}
    for phase in ("publish", "consume"):
        med = {s: medians(per[s], phase) for s in systems}
        if any(med.values()):
            summary["medians"][phase] = med
            if "lb" in med and "js" in med:
                summary["medians"][phase]["lb/js"] = {
                    f: med["lb"][f] / med["js"][f]
                    for f in med["lb"] if f in med["js"] and med["js"][f]
                }
    summary["ok"] = all(c["ok"] for cs in per.values() for c in cs)
    return summary


def print_summary(summary: dict[str, Any], out: Any = sys.stdout) -> None:
    wl = summary["workload"]
    print(f"\n== {wl['name']}: path={wl['path']} messages={wl['messages']} "
          f"size={wl['message_size']} pub-batch={wl['pub_batch']} "
          f"concurrent={wl['concurrent']} partitions={wl['partitions']} "
          f"rf={wl['replication_factor']} ack={wl['ack_policy']}"
          f"{' rate=' + str(wl['rate']) if wl['rate'] else ''}"
          f"{' fsync=' + wl['fsync'] if wl['fsync'] else ''}", file=out)
    for phase, med in summary["medians"].items():
        cols = [c for c in ("lb", "js", "lb/js") if c in med]
        print(f"  {phase} (median of {len(next(iter(summary['rounds'].values())))})",
              file=out)
        print("    " + f"{'figure':<24}" + "".join(f"{c:>14}" for c in cols), file=out)
        for f in FIGURES:
            if not any(f in med[c] for c in cols):
                continue
            cells = []
            for c in cols:
                v = med[c].get(f)
                cells.append(f"{'-':>14}" if v is None else
                             f"{v:>14.2f}" if c == "lb/js" else f"{v:>14,.1f}")
            print("    " + f"{f:<24}" + "".join(cells), file=out)
    for s, cases in summary["rounds"].items():
        for k, c in enumerate(cases):
            if not c["ok"]:
                print(f"  FAILED {s} round {k + 1}: {'; '.join(c['problems'])}", file=out)
                print("    " + c.get("logs", "").replace("\n", "\n    "), file=out)


# ------------------------------------------------------------------------------------------
# Suites
# ------------------------------------------------------------------------------------------


def readme_suite(scale: float) -> list[Workload]:
    """The README's workloads (issue 9, point 3); P6 is a rate sweep, run separately."""
    def n(x: int) -> int:
        return max(100, int(x * scale))

    return [
        Workload("P1", "publish-async", n(30_000), pub_batch=100, consume=False),
        Workload("P2", "publish-async", n(60_000), pub_batch=100, concurrent=4, consume=False),
        Workload("P3", "grpc-publish", n(1_000), pub_batch=1, consume=False),
        Workload("P4", "publish-async", n(20_000), pub_batch=100, replication_factor=3,
                 ack_policy="all", consume=False),
        # P5 fills the stream with plain NATS publishes (fast, lossless at this rate on both
        # systems, checked) and measures the read-back from EARLIEST.
        Workload("P5", "nats-raw", n(100_000), rate=50_000, consume=True),
        Workload("P7", "publish-async", n(20_000), pub_batch=100, fsync="batch", consume=False),
    ]


def quick_suite() -> list[tuple[Workload, list[str]]]:
    """Correctness smoke test: every path, 2 publishers, 2 partitions, both systems."""
    return [
        (Workload("quick-async", "publish-async", 3000, pub_batch=50, concurrent=2,
                  partitions=2), ["lb", "js"]),
        (Workload("quick-sync", "grpc-publish", 300, pub_batch=4), ["lb"]),
        (Workload("quick-envelope", "nats-envelope", 3000, pub_batch=50), ["lb"]),
        (Workload("quick-raw", "nats-raw", 3000, rate=3000, consume=False), ["lb"]),
    ]


def max_rate(systems: list[str], rates: list[float], seconds: float, size: int, tmp: Path,
             progress: Progress) -> dict[str, Any]:
    """P6: raw NATS publishing at each rate (ascending) until messages are lost. Per system:
    the highest sent rate that was stored as fast as it was sent (within P6_KEEP_UP) with
    nothing lost, and the highest storage rate seen in a lossless step (backlog included)."""
    out: dict[str, Any] = {}
    for s in systems:
        steps = []
        best = absorbed = 0.0
        for rate in rates:
            wl = Workload("P6", "nats-raw", int(rate * seconds), message_size=size,
                          consume=False, rate=rate)
            case = run_case(s, wl, tmp, f"P6 {s}/raw@{rate:,.0f}", progress)
            pub = case.get("publish", {})
            steps.append({"rate": rate, "achieved": pub.get("msgs_per_s"),
                          "lost": pub.get("lost"), "drain_s": pub.get("drain_s"),
                          "ingest": pub.get("ingest_msgs_per_s"),
                          "problems": case["problems"],
                          "srv_cpu_us_per_msg": pub.get("srv_cpu_us_per_msg")})
            # Keeping up: nothing lost; the rate kept is what was stored per second counting
            # the backlog drained after the publisher stopped (a server that buffers in its
            # NATS client would otherwise look faster than it is).
            if not case["ok"] or pub.get("lost", 1) != 0:
                break
            absorbed = max(absorbed, pub["ingest_msgs_per_s"])
            if pub["ingest_msgs_per_s"] >= P6_KEEP_UP * pub["msgs_per_s"]:
                best = max(best, pub["msgs_per_s"])
        out[s] = {"lossless_msgs_per_s": best, "absorbed_msgs_per_s": absorbed, "steps": steps}
    return out


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    with contextlib.suppress(OSError, IndexError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory": mem,
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg()}


def rst_table(summaries: list[dict[str, Any]], p6: dict[str, Any] | None) -> str:
    """The README table: one row per workload, lb and JetStream side by side."""
    head = ("Workload", "lb msg/s", "JS msg/s", "lb/JS", "lb p50/p99/p99.9 ms",
            "JS p50/p99/p99.9 ms", "lb srv µs/msg", "JS srv µs/msg", "others' cores")
    rows = []
    late = []  # P8 (seconds, not msg/s), after P6

    def lat(m: dict[str, float]) -> str:
        if "p50_us" not in m:
            return "-"
        return f"{m['p50_us'] / 1e3:.1f} / {m['p99_us'] / 1e3:.1f} / {m['p99.9_us'] / 1e3:.1f}"

    for s in summaries:
        wl = s["workload"]
        for phase in ("publish", "consume"):
            if phase not in s["medians"]:
                continue
            if phase == "publish" and wl["name"] == "P5":
                continue  # P5 reports its consume phase
            med = s["medians"][phase]
            lb_m, js_m = med.get("lb", {}), med.get("js", {})
            ratio = med.get("lb/js", {}).get("msgs_per_s")

            def num(m: dict[str, float], f: str, fmt: str) -> str:
                return format(m[f], fmt) if f in m else "failed"

            rows.append((
                wl["name"] + (" (consume)" if phase == "consume" else ""),
                num(lb_m, "msgs_per_s", ",.0f"), num(js_m, "msgs_per_s", ",.0f"),
                f"{ratio:.2f}" if ratio else "-", lat(lb_m), lat(js_m),
                num(lb_m, "srv_cpu_us_per_msg", ".0f"), num(js_m, "srv_cpu_us_per_msg", ".0f"),
                f"{max(lb_m.get('others_cores', 0), js_m.get('others_cores', 0)):.1f}",
            ))
        if wl["name"] == "P8" and "failover" in s["medians"]:
            med = s["medians"]["failover"]
            lb_s, js_s = med.get("lb", {}).get("failover_s"), med.get("js", {}).get("failover_s")
            late.append(("P8 (failover, s)", f"{lb_s:.2f} s" if lb_s else "failed",
                         f"{js_s:.2f} s" if js_s else "failed",
                         f"{lb_s / js_s:.2f}" if lb_s and js_s else "-",
                         "-", "-", "-", "-", "-"))
    if p6:
        lbr = p6.get("lb", {}).get("lossless_msgs_per_s", 0)
        jsr = p6.get("js", {}).get("lossless_msgs_per_s", 0)
        rows.append(("P6 (raw NATS, lossless)", f"{lbr:,.0f}", f"{jsr:,.0f}",
                     f"{lbr / jsr:.2f}" if jsr else "-", "-", "-", "-", "-", "-"))
    rows += late
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    sep = "  ".join("=" * w for w in widths)
    lines = [sep, "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), sep]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    lines.append(sep)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--path", choices=PATHS, default="publish-async")
    ap.add_argument("--messages", type=int, default=20_000, help="total, over all publishers")
    ap.add_argument("--message-size", type=int, default=256, help="value bytes")
    ap.add_argument("--pub-batch", type=int, default=100, help="messages in flight per publisher")
    ap.add_argument("--concurrent", type=int, default=1, help="publisher processes")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--replication-factor", type=int, default=1, choices=(1, 3))
    ap.add_argument("--ack-policy", choices=tuple(ACK_POLICIES), default="leader")
    ap.add_argument("--rate", type=float, default=0.0, help="nats-raw: target msg/s (0: max)")
    ap.add_argument("--fsync", default="", help="lb streams.fsync.policy (never, interval, "
                    "batch, messages); batch/always also set JetStream sync_interval: always")
    ap.add_argument("--no-consume", action="store_true", help="skip the read-back phase")
    ap.add_argument("--vs-jetstream", action="store_true", help="also run NATS JetStream")
    ap.add_argument("--jetstream-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3 "
                    "with --vs-jetstream or --suite, else 1)")
    ap.add_argument("--suite", choices=("readme",), help="run the README workloads P1-P8")
    ap.add_argument("--workload", choices=("P8",), help="P8: failover under load (kill -9 of "
                    "the leader until the next ALL ack); --vs-jetstream, --rounds, "
                    "--message-size and the --p8-* options apply")
    ap.add_argument("--skip-p8", action="store_true", help="--suite: leave P8 out")
    p8.add_options(ap)
    ap.add_argument("--scale", type=float, default=1.0, help="--suite: message-count factor")
    ap.add_argument("--p6-rates", default="20000,40000,60000,80000,120000,160000,240000,320000",
                    help="--suite: raw NATS rates to try, ascending")
    ap.add_argument("--quick", action="store_true", help="CI smoke test: correctness only")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--tmp", type=Path, help="where servers keep data (default: a temp dir)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="CORES",
                    help="before each timed phase, wait (up to 90 s) until other processes "
                    "use fewer than CORES cores (the machine may be shared)")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="py-spy (dev tool, not a dependency) every lb server in every phase; "
                    "collapsed stacks into DIR, ranked with profile_summary.py")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM/SIGHUP unwind through the finally blocks, which stop every child.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    progress = Progress(args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty()))
    global PROFILE_DIR, QUIET_CORES_MAX
    PROFILE_DIR = args.profile
    QUIET_CORES_MAX = args.wait_quiet
    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv[1:], "workloads": []}
    ok = True
    with tempfile.TemporaryDirectory(prefix="lb-bench-", dir=args.tmp) as tmpname:
        tmp = Path(tmpname)
        t_start = time.monotonic()
        if args.quick:
            for wl, systems in quick_suite():
                s = run_workload(wl, systems, 1, tmp, progress)
                print_summary(s)
                report["workloads"].append(s)
                ok = ok and s["ok"]
        elif args.suite == "readme":
            rounds = args.rounds or 3
            for wl in readme_suite(args.scale):
                s = run_workload(wl, ["lb", "js"], rounds, tmp, progress)
                print_summary(s)
                report["workloads"].append(s)
                ok = ok and s["ok"]
            rates = [float(r) for r in args.p6_rates.split(",") if r]
            report["p6"] = max_rate(["lb", "js"], rates, 2.0, 256, tmp, progress)
            print("\n== P6: highest lossless raw NATS rate (2 s per step)")
            for sys_name, r in report["p6"].items():
                steps = ", ".join(
                    f"target {st['rate']:,.0f}: sent {st['achieved'] or 0:,.0f}/s, stored "
                    f"{st['ingest'] or 0:,.0f}/s, lost {st['lost']}" for st in r["steps"])
                print(f"  {sys_name}: keeps up with {r['lossless_msgs_per_s']:,.0f} msg/s, "
                      f"absorbs {r['absorbed_msgs_per_s']:,.0f} msg/s  ({steps})")
            if not args.skip_p8:
                s = p8.run_p8(["lb", "js"], rounds, tmp, p8.options_from(args),
                              args.p8_keep_failed)
                p8.print_p8(s)
                report["workloads"].append(s)
                ok = ok and s["ok"]
                report["rst_p8"] = p8.p8_rst(s)
            report["rst"] = rst_table(report["workloads"], report["p6"])
            print("\n" + report["rst"])
            if "rst_p8" in report:
                print("\n" + report["rst_p8"])
        elif args.workload == "P8":
            systems = ["js"] if args.jetstream_only else (
                ["lb", "js"] if args.vs_jetstream else ["lb"])
            rounds = args.rounds or (3 if args.vs_jetstream else 1)
            s = p8.run_p8(systems, rounds, tmp, p8.options_from(args, args.message_size),
                          args.p8_keep_failed)
            p8.print_p8(s)
            report["workloads"].append(s)
            if len(systems) == 2:
                report["rst_p8"] = p8.p8_rst(s)
                print("\n" + report["rst_p8"])
            ok = s["ok"]
        else:
            systems = ["js"] if args.jetstream_only else (
                ["lb", "js"] if args.vs_jetstream else ["lb"])
            rounds = args.rounds or (3 if args.vs_jetstream else 1)
            wl = Workload(
                "custom", args.path, args.messages, args.message_size, args.pub_batch,
                args.concurrent, args.partitions, args.replication_factor, args.ack_policy,
                consume=not args.no_consume, rate=args.rate, fsync=args.fsync,
            )
            s = run_workload(wl, systems, rounds, tmp, progress)
            print_summary(s)
            report["workloads"].append(s)
            ok = s["ok"]
        report["elapsed_s"] = time.monotonic() - t_start
    report["ok"] = ok
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    print(f"\n{'OK' if ok else 'FAILED'} in {report['elapsed_s']:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
