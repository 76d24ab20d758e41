"""lb's metadata: the replicated cluster model and the pure state machine over it.

Sans-IO: no trio, NATS, os or clock. The server proposes ops (``ops``), the Raft driver feeds
committed entries to ``MetadataFSM.apply`` and acts on the returned effects (``effects``).
The controller uses ``placement`` and ``LeaderFailureTracker`` to decide what to propose, and
the gRPC layer uses ``validation`` and ``queries``.
"""

from lb.metadata.effects import (
    Effect,
    IsrChanged,
    LeaderChanged,
    PartitionsPaused,
    PartitionsResumed,
    ReadonlyChanged,
    ServerRegistered,
    StateRestored,
    StreamCreated,
    StreamDeleted,
)
from lb.metadata.errors import ErrorCode, MetadataError
from lb.metadata.failover import LeaderFailureTracker, LeaderReport
from lb.metadata.fsm import ApplyResult, MetadataFSM
from lb.metadata.model import (
    RESERVED_STREAMS,
    MetadataState,
    Partition,
    ServerInfo,
    Stream,
    StreamConfig,
    partition_subject,
)
from lb.metadata.placement import Placement, place_partitions

__all__ = [
    "RESERVED_STREAMS",
    "ApplyResult",
    "Effect",
    "ErrorCode",
    "IsrChanged",
    "LeaderChanged",
    "LeaderFailureTracker",
    "LeaderReport",
    "MetadataError",
    "MetadataFSM",
    "MetadataState",
    "Partition",
    "PartitionsPaused",
    "PartitionsResumed",
    "Placement",
    "ReadonlyChanged",
    "ServerInfo",
    "ServerRegistered",
    "StateRestored",
    "Stream",
    "StreamConfig",
    "StreamCreated",
    "StreamDeleted",
    "partition_subject",
    "place_partitions",
]
