"""The chaos checker: a pure function from a :class:`History` to a :class:`CheckReport`.

What it demands (issue 7), per partition, once the faults have healed:

- every message acked under ALL sits exactly once, at its acked offset, in the final log of
  every ISR replica, at or below the high watermark;
- the ISR replicas' logs are identical (offset, timestamp, leader epoch, body bytes) up to the
  HW, and every log's offsets are contiguous (a missing prefix only where retention ran);
- no payload id appears twice in the committed log, and nothing appears that nobody sent;
- every consumer session read contiguous offsets in order, each equal to the final committed
  log at that offset; going back (re-delivery) is allowed only where a consumer reconnected;
- LEADER-acked messages that are missing (or sit at another offset) are counted; they are
  allowed only across a leader failover (a leader change observed after the publish, or a new
  leader epoch in the final log starting at or below the acked offset after the publish);
- every replica is back in the ISR, and every partition took an ALL ack within
  ``writable_bound_s`` of the last heal.

It also measures unavailability windows: gaps between successful acks longer than
``gap_threshold_s``, with the faults that overlap them.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from lb.testing.chaos_history import (
    ACKED,
    FAILED,
    PENDING,
    TIMEOUT,
    History,
    PartitionFinal,
    PublishOp,
    StoredRecord,
)

NS = 1_000_000_000


@dataclass
class Violation:
    kind: str
    stream: str
    partition: int
    detail: str


@dataclass
class LeaderLoss:
    """A LEADER-acked message that is not at its acked offset in the final committed log."""

    pid: str
    stream: str
    partition: int
    offset: int
    path: str
    sent_ns: int
    found_at: int | None  # another offset holding the same payload, if any
    explained: bool
    evidence: str


@dataclass
class Window:
    """A span with no successful ack on a partition, longer than the threshold."""

    stream: str
    partition: int
    start_ns: int
    end_ns: int
    faults: list[int]

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / NS


@dataclass
class CheckReport:
    violations: list[Violation] = field(default_factory=list)
    leader_losses: list[LeaderLoss] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    writable_s: dict[str, float | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def kinds(self) -> set[str]:
        return {v.kind for v in self.violations}

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "violations": [asdict(v) for v in self.violations],
            "leader_losses": [asdict(x) for x in self.leader_losses],
            "unavailability_windows": [
                {**asdict(w), "seconds": round(w.seconds, 3)} for w in self.windows
            ],
            "writable_after_heal_s": self.writable_s,
            "counts": self.counts,
        }


def _key(stream: str, partition: int) -> str:
    return f"{stream}/{partition}"


def _rec_id(r: StoredRecord) -> tuple[int, int, int, bytes]:
    return (r.offset, r.timestamp_ns, r.leader_epoch, r.body)


class _Checker:
    def __init__(self, h: History, writable_bound_s: float, gap_threshold_s: float,
                 violations_max: int) -> None:
        self.h = h
        self.bound_s = writable_bound_s
        self.gap_ns = int(gap_threshold_s * NS)
        self.violations_max = violations_max
        self.report = CheckReport()
        self.counts: Counter[str] = Counter()
        self.ops_by_part: dict[str, list[PublishOp]] = defaultdict(list)
        for op in h.ops:
            self.ops_by_part[_key(op.stream, op.partition)].append(op)
        self.known_pids = {op.pid for op in h.ops}

    def bad(self, kind: str, stream: str, partition: int, detail: str) -> None:
        self.counts[f"violation.{kind}"] += 1
        if self.counts[f"violation.{kind}"] <= self.violations_max:
            self.report.violations.append(Violation(kind, stream, partition, detail))

    # ------------------------------------------------------------------ the whole history

    def run(self) -> CheckReport:
        finals = {_key(f.stream, f.partition): f for f in self.h.finals}
        for op in self.h.ops:
            self.counts["ops"] += 1
            self.counts[f"ops.{op.path}.{op.policy}"] += 1
            self.counts[f"outcome.{op.outcome}"] += 1
            if len(op.acks) > 1:
                self.counts["ops.multiple_acks"] += 1
        for key, ops in self.ops_by_part.items():
            if key not in finals and any(op.outcome == ACKED for op in ops):
                stream, _, p = key.rpartition("/")
                self.bad("no_final_state", stream, int(p), "acked publishes but no final logs")
        for fin in self.h.finals:
            self.check_partition(fin)
        self.check_windows()
        for f in self.h.faults:
            self.counts[f"faults.{f.kind}"] += 1
        self.counts["faults"] = len(self.h.faults)
        self.report.counts = dict(sorted(self.counts.items()))
        return self.report

    # ------------------------------------------------------------------ one partition

    def check_partition(self, fin: PartitionFinal) -> None:
        s, p = fin.stream, fin.partition
        key = _key(s, p)
        if set(fin.isr) != set(fin.replicas):
            self.bad("isr_not_restored", s, p,
                     f"after healing the ISR is {sorted(fin.isr)}, replicas {sorted(fin.replicas)}")
        if fin.leader not in fin.isr:
            self.bad("leader_not_in_isr", s, p, f"leader {fin.leader!r}, ISR {sorted(fin.isr)}")
        for name in fin.replicas:
            if name not in fin.logs:
                self.bad("missing_log", s, p, f"no final log for replica {name}")
        for name in sorted(fin.logs):
            self.check_contiguous(fin, name)
        isr_logs = {n: fin.logs[n] for n in fin.isr if n in fin.logs}
        if not isr_logs:
            self.bad("missing_log", s, p, "no ISR replica's log")
            return
        ref_name = fin.leader if fin.leader in isr_logs else sorted(isr_logs)[0]
        # The HW checkpoint of a replica can lag its in-memory HW; the final marker was acked
        # under ALL, so everything up to its offset is committed whatever the checkpoints say.
        hw = max(max(lg.hw for lg in isr_logs.values()), fin.marker_offset)
        committed = {r.offset: r for r in isr_logs[ref_name].records if r.offset <= hw}
        self.counts["committed_records"] += len(committed)
        self.check_identical(fin, isr_logs, ref_name, hw, committed)
        self.check_payloads(fin, committed)
        self.check_acks(fin, isr_logs, hw, committed)
        self.check_consumers(fin, committed, hw)
        healed = self.h.healed_ns
        at = self.h.writable_ns.get(key)
        if at is None:
            self.report.writable_s[key] = None
            self.bad("not_writable_after_heal", s, p,
                     f"no ALL ack after the last heal (bound {self.bound_s}s)")
        else:
            secs = round(max(0, at - healed) / NS, 3)
            self.report.writable_s[key] = secs
            if secs > self.bound_s:
                self.bad("not_writable_after_heal", s, p,
                         f"first ALL ack {secs}s after the last heal (bound {self.bound_s}s)")

    def check_contiguous(self, fin: PartitionFinal, name: str) -> None:
        lg = fin.logs[name]
        offsets = [r.offset for r in lg.records]
        if not offsets:
            return
        if not fin.retention and offsets[0] != 0:
            self.bad("offset_gap", fin.stream, fin.partition,
                     f"{name}: log starts at {offsets[0]} but nothing ran retention")
        for a, b in itertools.pairwise(offsets):
            if b != a + 1:
                self.bad("offset_gap", fin.stream, fin.partition,
                         f"{name}: offset {b} follows {a}")
                break
        if offsets[-1] != lg.next_offset - 1:
            self.bad("offset_gap", fin.stream, fin.partition,
                     f"{name}: last record {offsets[-1]} but LEO {lg.next_offset}")

    def check_identical(self, fin: PartitionFinal, isr_logs: dict[str, Any], ref_name: str,
                        hw: int, committed: dict[int, StoredRecord]) -> None:
        ref = [_rec_id(committed[o]) for o in sorted(committed)]
        for name, lg in sorted(isr_logs.items()):
            if name == ref_name:
                continue
            mine = [_rec_id(r) for r in lg.records if r.offset <= hw]
            if mine == ref:
                continue
            detail = f"{name} vs {ref_name} up to HW {hw}: "
            for a, b in zip(mine, ref, strict=False):
                if a != b:
                    ra = next(r for r in lg.records if r.offset == a[0])
                    rb = committed.get(b[0])
                    detail += (f"first difference at offset {b[0]}: {name} has "
                               f"(off {a[0]}, epoch {a[2]}, pid {ra.pid}), {ref_name} has "
                               f"(off {b[0]}, epoch {b[2]}, pid {rb.pid if rb else None})")
                    break
            else:
                detail += f"{name} has {len(mine)} records, {ref_name} {len(ref)}"
            self.bad("divergence", fin.stream, fin.partition, detail)

    def check_payloads(self, fin: PartitionFinal, committed: dict[int, StoredRecord]) -> None:
        seen: dict[str, int] = {}
        for o in sorted(committed):
            r = committed[o]
            if r.pid is None or r.pid not in self.known_pids:
                self.bad("phantom", fin.stream, fin.partition,
                         f"offset {o} holds {r.pid!r}, which no publisher sent")
                continue
            if r.pid in seen:
                self.bad("duplicate", fin.stream, fin.partition,
                         f"payload {r.pid} at offsets {seen[r.pid]} and {o}")
            else:
                seen[r.pid] = o

    def failover_evidence(self, fin: PartitionFinal, op: PublishOp, offset: int,
                          committed: dict[int, StoredRecord]) -> str:
        prev = ""
        for obs in self.h.leaders:
            if obs.stream != fin.stream or obs.partition != fin.partition:
                continue
            if prev and obs.leader != prev and obs.t_ns >= op.sent_ns:
                return f"leader {prev} -> {obs.leader} observed after the publish"
            prev = obs.leader or prev
        last_epoch = None
        for o in sorted(committed):
            r = committed[o]
            if last_epoch is not None and r.leader_epoch != last_epoch:
                if o <= offset and r.timestamp_ns >= op.sent_ns:
                    return f"leader epoch {r.leader_epoch} starts at offset {o} after the publish"
                if o > offset:
                    break
            last_epoch = r.leader_epoch
        return ""

    def check_acks(self, fin: PartitionFinal, isr_logs: dict[str, Any], hw: int,
                   committed: dict[int, StoredRecord]) -> None:
        s, p = fin.stream, fin.partition
        by_offset = {name: {r.offset: r for r in lg.records} for name, lg in isr_logs.items()}
        where = {r.pid: o for o, r in committed.items()}
        for op in self.ops_by_part.get(_key(s, p), []):
            if not op.acks:
                continue
            for offset in op.acks:
                if op.policy == "ALL":
                    self.counts["acked_all_checked"] += 1
                    if offset > hw:
                        self.bad("acked_not_committed", s, p,
                                 f"{op.pid} ({op.path}) acked ALL at {offset}, HW is {hw}")
                    for name, recs in sorted(by_offset.items()):
                        r = recs.get(offset)
                        if r is None or r.pid != op.pid:
                            self.bad(
                                "lost_acked_all", s, p,
                                f"{op.pid} ({op.path} via {op.via}) acked ALL at offset {offset}; "
                                f"replica {name} has {r.pid if r else 'nothing'} there"
                                f"{'' if op.pid not in where else f' (found at {where[op.pid]})'}",
                            )
                    continue
                self.counts["acked_leader_checked"] += 1
                r = committed.get(offset)
                if r is not None and r.pid == op.pid:
                    continue
                evidence = self.failover_evidence(fin, op, offset, committed)
                loss = LeaderLoss(op.pid, s, p, offset, op.path, op.sent_ns,
                                  where.get(op.pid), bool(evidence), evidence)
                self.report.leader_losses.append(loss)
                self.counts["leader_losses"] += 1
                if not evidence:
                    raw = next((x for lg in isr_logs.values() for x in lg.records
                                if x.offset == offset), None)
                    self.bad("lost_acked_leader_without_failover", s, p,
                             f"{op.pid} ({op.path} via {op.via}) acked LEADER at {offset}; the "
                             f"committed log (HW {hw}) has {r.pid if r else 'nothing'} there "
                             f"(uncommitted: {raw.pid if raw and raw.offset > hw else '-'}); "
                             f"no leader change")

    def check_consumers(self, fin: PartitionFinal, committed: dict[int, StoredRecord],
                        hw: int) -> None:
        s, p = fin.stream, fin.partition
        sessions = [x for x in self.h.sessions if x.stream == s and x.partition == p]
        seen_by: dict[str, set[int]] = defaultdict(set)
        oldest = min(committed) if committed else 0
        for sess in sorted(sessions, key=lambda x: x.started_ns):
            prev: int | None = None
            for o, pid in sess.seen:
                self.counts["consumer_reads"] += 1
                if prev is None:
                    if o > sess.start_offset and not (fin.retention and o <= oldest):
                        self.bad("consumer_gap", s, p,
                                 f"{sess.consumer} on {sess.server} asked for {sess.start_offset}"
                                 f" and got {o} first")
                elif o != prev + 1 and not (fin.retention and o > prev):
                    self.bad("consumer_order", s, p,
                             f"{sess.consumer} on {sess.server}: offset {o} after {prev} "
                             f"within one session")
                prev = o
                if o in seen_by[sess.consumer]:
                    self.counts["consumer_redelivered"] += 1
                seen_by[sess.consumer].add(o)
                r = committed.get(o)
                if r is None:
                    self.bad("consumer_saw_uncommitted", s, p,
                             f"{sess.consumer} on {sess.server} read {pid} at {o}; the final "
                             f"committed log (HW {hw}) has nothing there")
                elif r.pid != pid:
                    self.bad("consumer_mismatch", s, p,
                             f"{sess.consumer} on {sess.server} read {pid} at {o}; the final "
                             f"log has {r.pid}")
        self.counts["consumer_sessions"] += len(sessions)

    # ------------------------------------------------------------------ availability

    def check_windows(self) -> None:
        starts = [op.sent_ns for op in self.h.ops]
        if not starts:
            return
        t0 = min(starts)
        for key, ops in sorted(self.ops_by_part.items()):
            stream, _, ps = key.rpartition("/")
            end = self.h.traffic_ended_ns or (1 << 63)
            times = sorted(op.done_ns for op in ops
                           if op.outcome == ACKED and op.done_ns and op.sent_ns < end)
            prev = t0
            for t in times:
                if t - prev > self.gap_ns:
                    faults = [
                        f.index for f in self.h.faults
                        if f.started_ns <= t and (f.recovered_ns or f.healed_ns or t) >= prev
                    ]
                    self.report.windows.append(Window(stream, int(ps), prev, t, faults))
                prev = max(prev, t)


def check(history: History, writable_bound_s: float = 30.0, gap_threshold_s: float = 1.0,
          violations_max: int = 50) -> CheckReport:
    """Check a finished history. ``violations_max`` caps the listed violations per kind
    (the counts keep the totals)."""
    return _Checker(history, writable_bound_s, gap_threshold_s, violations_max).run()


def summary(history: History, report: CheckReport) -> str:
    """A short human summary of a checked run."""
    c = report.counts
    faults = Counter(f.kind for f in history.faults)
    lines = [
        f"seed {history.seed}: {'OK' if report.ok else 'VIOLATIONS'}",
        f"  servers {','.join(history.servers)}; faults {len(history.faults)}: "
        + ", ".join(f"{k} x{n}" for k, n in sorted(faults.items())),
        f"  publishes {c.get('ops', 0)}: acked {c.get(f'outcome.{ACKED}', 0)}, "
        f"refused {c.get(f'outcome.{FAILED}', 0)}, timed out {c.get(f'outcome.{TIMEOUT}', 0)}, "
        f"pending {c.get(f'outcome.{PENDING}', 0)}",
        f"  ALL acks checked {c.get('acked_all_checked', 0)}, LEADER acks checked "
        f"{c.get('acked_leader_checked', 0)}, LEADER acks lost {len(report.leader_losses)} "
        f"(unexplained {sum(1 for x in report.leader_losses if not x.explained)})",
        f"  consumer reads {c.get('consumer_reads', 0)} in {c.get('consumer_sessions', 0)} "
        f"sessions, re-delivered after reconnects {c.get('consumer_redelivered', 0)}",
    ]
    if report.windows:
        longest = max(report.windows, key=lambda w: w.seconds)
        lines.append(f"  unavailability windows >threshold: {len(report.windows)}, longest "
                     f"{longest.seconds:.1f}s on {longest.stream}/{longest.partition}")
    ws = [v for v in report.writable_s.values() if v is not None]
    if ws:
        lines.append(f"  writable after the last heal within {max(ws):.1f}s")
    for v in report.violations[:20]:
        lines.append(f"  VIOLATION {v.kind} {v.stream}/{v.partition}: {v.detail}")
    if len(report.violations) > 20:
        lines.append(f"  ... {len(report.violations) - 20} more violations in the JSON report")
    return "\n".join(lines)
