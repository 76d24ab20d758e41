"""What a chaos run saw: publishes and their acks, consumer reads, faults, leaders, final logs.

Why a separate, plain-data module: the checker (:mod:`lb.testing.chaos_checker`) must be a pure
function of a history, so that it can be tested against histories broken on purpose and so that
a recorded run can be checked again later from its JSON. The recorder side is thread-safe
because the workload (an asyncio loop in a thread) and the fault injector (the main thread)
write to it at the same time.

Times are wall-clock nanoseconds (``time.time_ns()``) so that they compare with the record
timestamps the partition leaders write into the logs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PAYLOAD_PREFIX = b"chaos|"

# Publish outcomes.
ACKED = "ack"  # the server said it stored (LEADER) or committed (ALL) the message
FAILED = "error"  # refused (an error status or ackError): it may still have been stored
TIMEOUT = "timeout"  # no answer within the deadline: unknown whether it was stored
PENDING = "pending"  # still in flight when the history was closed

PATHS = ("grpc", "grpc_async", "nats")
POLICIES = ("ALL", "LEADER")


def encode_payload(pid: str, pad_bytes: int = 0) -> bytes:
    """The value a chaos publisher sends: a recognisable prefix, the payload id, padding."""
    return PAYLOAD_PREFIX + pid.encode() + b"|" + b"x" * pad_bytes


def decode_payload(value: bytes) -> str | None:
    """The payload id in a chaos value, or None when the value is not one of ours."""
    if not value.startswith(PAYLOAD_PREFIX):
        return None
    end = value.find(b"|", len(PAYLOAD_PREFIX))
    if end < 0:
        return None
    try:
        return value[len(PAYLOAD_PREFIX):end].decode()
    except UnicodeDecodeError:
        return None


@dataclass
class PublishOp:
    """One publish attempt. ``pid`` is unique per attempt: publishers never retry an id, so a
    payload id that shows up twice in a log was duplicated by the servers."""

    pid: str
    stream: str
    partition: int
    path: str  # one of PATHS
    policy: str  # one of POLICIES
    via: str  # the server (gRPC) or NATS url the publish went through
    sent_ns: int
    done_ns: int = 0
    outcome: str = PENDING
    acks: list[int] = field(default_factory=list)  # offsets in the order the acks came
    error: str = ""

    @property
    def offset(self) -> int | None:
        return self.acks[0] if self.acks else None


@dataclass
class ConsumerSession:
    """One subscription: from ``start_offset`` on ``server`` until it ended (and why)."""

    consumer: str
    stream: str
    partition: int
    server: str
    start_offset: int
    started_ns: int
    ended_ns: int = 0
    end_reason: str = ""
    seen: list[tuple[int, str | None]] = field(default_factory=list)  # (offset, payload id)


@dataclass
class FaultEvent:
    """A fault as it was applied: which servers, when, and how much was in flight then."""

    index: int
    kind: str
    targets: list[str]
    detail: str
    started_ns: int
    healed_ns: int = 0
    inflight_at_start: int = 0
    recovered_ns: int = 0  # when the cluster agreed on a metadata leader again after healing
    note: str = ""


@dataclass
class LeaderObservation:
    """A partition's leader and ISR as one server reported them, recorded when they changed."""

    t_ns: int
    stream: str
    partition: int
    leader: str
    isr: list[str]
    via: str


@dataclass
class StoredRecord:
    """One record of a replica's final log; ``pid`` is parsed from the stored value."""

    offset: int
    timestamp_ns: int
    leader_epoch: int
    body: bytes
    pid: str | None


@dataclass
class ReplicaLog:
    """One replica's final log of one partition, read from its files after a clean stop."""

    server: str
    oldest_offset: int  # -1 when empty
    next_offset: int  # LEO
    hw: int
    records: list[StoredRecord]


@dataclass
class PartitionFinal:
    """The end state of one partition: metadata as last reported and every replica's log."""

    stream: str
    partition: int
    leader: str
    replicas: list[str]
    isr: list[str]
    logs: dict[str, ReplicaLog]
    retention: bool = False  # True if retention may have removed a prefix
    marker_pid: str = ""  # the final ALL publish that made everything before it committed
    marker_offset: int = -1


@dataclass
class History:
    """Everything a run recorded. Recorder methods take a lock; readers use the lists after
    the run has stopped."""

    seed: int
    servers: list[str]
    started_ns: int
    ops: list[PublishOp] = field(default_factory=list)
    sessions: list[ConsumerSession] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    leaders: list[LeaderObservation] = field(default_factory=list)
    finals: list[PartitionFinal] = field(default_factory=list)
    healed_ns: int = 0  # when the last fault was healed
    traffic_ended_ns: int = 0  # when the publishers were told to stop (drain and marker after)
    writable_ns: dict[str, int] = field(default_factory=dict)  # "stream/p" -> first ALL ack
    ended_ns: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = 0

    # ------------------------------------------------------------------ recording

    def add_op(self, op: PublishOp) -> PublishOp:
        with self._lock:
            self.ops.append(op)
            if op.outcome == PENDING:
                self._pending += 1
        return op

    def finish_op(self, op: PublishOp, outcome: str, now_ns: int, offset: int | None = None,
                  error: str = "") -> None:
        """Record an answer. A second ack for the same op (two leaders ingesting one NATS
        message) is kept too: the checker decides whether that is allowed."""
        with self._lock:
            if offset is not None:
                op.acks.append(offset)
            if op.outcome == PENDING:
                self._pending -= 1
            if op.outcome in (PENDING, TIMEOUT) or (outcome == ACKED and op.outcome != ACKED):
                op.outcome = outcome
                op.done_ns = now_ns
                op.error = error

    def add_session(self, s: ConsumerSession) -> ConsumerSession:
        with self._lock:
            self.sessions.append(s)
        return s

    def add_fault(self, f: FaultEvent) -> FaultEvent:
        with self._lock:
            self.faults.append(f)
        return f

    def add_leader(self, obs: LeaderObservation) -> None:
        with self._lock:
            self.leaders.append(obs)

    def inflight(self) -> int:
        """Publishes sent and not yet answered (nor given up)."""
        return self._pending

    def note(self, text: str) -> None:
        with self._lock:
            self.notes.append(text)

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (record bodies as hex) that :meth:`from_json` reads back."""
        d = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        for fin in d["finals"]:
            for lg in fin["logs"].values():
                for r in lg["records"]:
                    r["body"] = r["body"].hex()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> History:
        h = cls(seed=d["seed"], servers=list(d["servers"]), started_ns=d["started_ns"])
        h.ops = [PublishOp(**o) for o in d["ops"]]
        h.sessions = [
            ConsumerSession(**{**s, "seen": [(o, p) for o, p in s["seen"]]}) for s in d["sessions"]
        ]
        h.faults = [FaultEvent(**f) for f in d["faults"]]
        h.leaders = [LeaderObservation(**x) for x in d["leaders"]]
        h.finals = []
        for fin in d["finals"]:
            logs = {
                name: ReplicaLog(
                    **{
                        **lg,
                        "records": [
                            StoredRecord(**{**r, "body": bytes.fromhex(r["body"])})
                            for r in lg["records"]
                        ],
                    }
                )
                for name, lg in fin["logs"].items()
            }
            h.finals.append(PartitionFinal(**{**fin, "logs": logs}))
        h.healed_ns = d["healed_ns"]
        h.traffic_ended_ns = d.get("traffic_ended_ns", 0)
        h.writable_ns = dict(d["writable_ns"])
        h.ended_ns = d["ended_ns"]
        h.notes = list(d["notes"])
        return h

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> History:
        return cls.from_json(json.loads(path.read_text()))
