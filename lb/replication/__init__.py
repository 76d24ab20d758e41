"""Sans-IO partition replication: the leader's HW/ISR decisions, the follower's KIP-101
truncation and fetch handling, and pending-ack bookkeeping.

No I/O, no clock: the Trio partition tasks call these with ``now_ns`` values and carry out the
decisions (read/append/truncate the log, send NATS messages, propose metadata ops).
``lb.testing.repl_sim`` drives the same objects through a seeded faulty network.
"""

from lb.replication.acks import AckPolicy, PendingAcks
from lb.replication.follower import FollowerState, Phase, TruncationBelowHighWatermark
from lb.replication.leader import LeaderState, ReplicaProgress, end_offset_for_epoch
from lb.replication.messages import (
    UNDEFINED,
    EpochLookup,
    EpochRequest,
    EpochResponse,
    FetchOutcome,
    FetchRequest,
    FetchResponse,
    FetchVerdict,
    IsrChange,
    IsrChangeKind,
    OutcomeKind,
    Truncation,
)

__all__ = [
    "UNDEFINED",
    "AckPolicy",
    "EpochLookup",
    "EpochRequest",
    "EpochResponse",
    "FetchOutcome",
    "FetchRequest",
    "FetchResponse",
    "FetchVerdict",
    "FollowerState",
    "IsrChange",
    "IsrChangeKind",
    "LeaderState",
    "OutcomeKind",
    "PendingAcks",
    "Phase",
    "ReplicaProgress",
    "Truncation",
    "TruncationBelowHighWatermark",
    "end_offset_for_epoch",
]
