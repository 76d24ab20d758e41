"""Sans-IO Raft for lb's metadata controller (shaped after etcd-io/raft).

Ticks and messages go in; a :class:`Ready` comes out with what to persist, send and apply. The
driver (``lb.server``) owns the clock, the disk and the network. See :mod:`lb.raft.core` for
the design choices and :mod:`lb.raft.ready` for the driver contract.
"""

from .bootstrap import (
    detect_cluster_conflict,
    join_change,
    peers_cluster_id,
    peers_conf_state,
)
from .core import ProgressStatus, RaftConfig, RaftNode, Status, apply_conf_change
from .errors import (
    ConfChangeInProgress,
    InvalidConfChange,
    NotLeader,
    ProposalDropped,
    RaftError,
    ReadyOutstanding,
)
from .messages import (
    NO_NODE,
    ConfChange,
    ConfChangeKind,
    ConfEntry,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    Snapshot,
    decode_conf_entry,
    encode_conf_entry,
)
from .ready import ClusterConflict, Ready, Role, SoftState

__all__ = [
    "NO_NODE",
    "ClusterConflict",
    "ConfChange",
    "ConfChangeInProgress",
    "ConfChangeKind",
    "ConfEntry",
    "ConfState",
    "Entry",
    "EntryKind",
    "HardState",
    "InvalidConfChange",
    "Message",
    "MessageType",
    "NotLeader",
    "ProgressStatus",
    "ProposalDropped",
    "RaftConfig",
    "RaftError",
    "RaftNode",
    "Ready",
    "ReadyOutstanding",
    "Role",
    "Snapshot",
    "SoftState",
    "Status",
    "apply_conf_change",
    "decode_conf_entry",
    "detect_cluster_conflict",
    "encode_conf_entry",
    "join_change",
    "peers_cluster_id",
    "peers_conf_state",
]
