"""Plain data types exchanged between the Raft core, its driver and its peers.

Everything here is a slotted dataclass with simple field types (str, int, bool, bytes, tuples
and lists of these) so that a protobuf mapping is mechanical. No wire codec lives here: the
server maps these onto ``protos/internal.proto``. The one exception is the payload of
configuration-change entries (:func:`encode_conf_entry`), because every replica must derive the
same membership from the same log bytes and that format therefore belongs to the core.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

NO_NODE = ""
"""Node id meaning "nobody" (no vote cast, no known leader)."""


class EntryKind(enum.IntEnum):
    """What a log entry carries."""

    NORMAL = 0
    """Application data (a metadata operation)."""
    CONF_CHANGE = 1
    """A membership change; ``data`` is :func:`encode_conf_entry` output."""
    NOOP = 2
    """The empty entry a new leader appends so that it can commit in its own term."""


@dataclass(slots=True, frozen=True)
class Entry:
    """One log entry. ``index`` starts at 1; ``term`` is the leader term that created it."""

    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def size_bytes(self) -> int:
        """Approximate encoded size, used for flow control (max bytes per append)."""
        return len(self.data) + 16


@dataclass(slots=True, frozen=True)
class HardState:
    """The state that must be on disk before any message that depends on it is sent."""

    term: int = 0
    vote: str = NO_NODE
    commit: int = 0


@dataclass(slots=True, frozen=True)
class ConfState:
    """A cluster membership: voters count for elections and commit, learners only replicate.

    ``cluster_id`` is chosen once when the cluster is bootstrapped and is carried by every
    later configuration; two clusters that meet on one namespace detect each other through it.
    """

    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()
    cluster_id: str = ""

    def members(self) -> tuple[str, ...]:
        return self.voters + self.learners

    def __post_init__(self) -> None:
        assert not set(self.voters) & set(self.learners), "a node is voter and learner"
        assert len(set(self.voters)) == len(self.voters), "duplicate voter"
        assert len(set(self.learners)) == len(self.learners), "duplicate learner"


@dataclass(slots=True, frozen=True)
class Snapshot:
    """Application state as of ``index`` (inclusive), with the membership at that index."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    data: bytes = b""


class ConfChangeKind(enum.IntEnum):
    """Single-server membership changes (one at a time, see :mod:`lb.raft.core`)."""

    ADD_VOTER = 0
    """Add a new voter, or promote an existing learner."""
    ADD_LEARNER = 1
    """Add a new learner (non-voter)."""
    REMOVE_NODE = 2
    """Remove a voter or a learner."""


@dataclass(slots=True, frozen=True)
class ConfChange:
    """A request to change membership by one server."""

    kind: ConfChangeKind
    node_id: str


@dataclass(slots=True, frozen=True)
class ConfEntry:
    """Decoded payload of a CONF_CHANGE entry: the change and the configuration it yields.

    Carrying the resulting configuration (not just the delta) makes every replica's view a pure
    function of the latest conf entry, with no replay needed after a truncation.
    """

    change: ConfChange | None
    conf_state: ConfState


def encode_conf_entry(conf_entry: ConfEntry) -> bytes:
    """Encode a conf entry payload (JSON, compact and stable)."""
    cs = conf_entry.conf_state
    obj: dict[str, object] = {
        "voters": list(cs.voters),
        "learners": list(cs.learners),
        "cluster_id": cs.cluster_id,
    }
    if conf_entry.change is not None:
        obj["change"] = [int(conf_entry.change.kind), conf_entry.change.node_id]
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def decode_conf_entry(data: bytes) -> ConfEntry:
    """Inverse of :func:`encode_conf_entry`."""
    obj = json.loads(data)
    change = None
    if "change" in obj:
        kind, node_id = obj["change"]
        change = ConfChange(ConfChangeKind(kind), node_id)
    cs = ConfState(tuple(obj["voters"]), tuple(obj["learners"]), obj["cluster_id"])
    return ConfEntry(change, cs)


class MessageType(enum.IntEnum):
    """Peer-to-peer message kinds."""

    PRE_VOTE = 0
    PRE_VOTE_RESP = 1
    VOTE = 2
    VOTE_RESP = 3
    APPEND = 4
    APPEND_RESP = 5
    HEARTBEAT = 6
    HEARTBEAT_RESP = 7
    SNAPSHOT = 8
    TIMEOUT_NOW = 9
    PROBE = 10
    """Cluster-identity announcement broadcast by the driver (two-seed detection)."""


@dataclass(slots=True)
class Message:
    """A Raft message. Field meaning depends on ``type`` (same conventions as etcd raft):

    - APPEND: ``index``/``log_term`` identify the entry preceding ``entries``; ``commit``.
    - APPEND_RESP: ``index`` is the last matching index (accept) or the rejected prev index;
      on reject, ``reject_hint``/``log_term`` name the follower's guess of the conflict point.
    - (PRE_)VOTE: ``index``/``log_term`` are the candidate's last entry; ``transfer`` bypasses
      the leader lease (leadership transfer).
    - SNAPSHOT: ``snapshot``.
    - Every message carries the sender's ``cluster_id`` ("" while unknown).
    """

    type: MessageType
    from_: str
    to: str
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: list[Entry] = field(default_factory=list)
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    transfer: bool = False
    cluster_id: str = ""
