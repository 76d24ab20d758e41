"""The batch of work the Raft core hands to its driver, and the driver's contract.

The driver loop (see :class:`Ready`)::

    rd = node.ready()
    if rd is not None:
        persist(rd.snapshot, rd.entries, rd.hard_state)   # durably (fsync) and in this order
        send(rd.messages)                                  # only after persisting
        restore(rd.snapshot); apply(rd.committed_entries)  # only after persisting
        node.advance(rd)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .messages import Entry, HardState, Message, Snapshot


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(slots=True, frozen=True)
class SoftState:
    """Volatile state the driver may want to react to (not persisted)."""

    leader: str
    role: Role


@dataclass(slots=True, frozen=True)
class ClusterConflict:
    """A peer belongs to another cluster (different cluster id) on our namespace.

    Liftbridge CLU-3: two servers that both bootstrapped as seed must detect each other and exit
    fatally. The driver reacts to this; the core only reports it and drops the message.
    """

    peer: str
    peer_cluster_id: str
    local_cluster_id: str


@dataclass(slots=True)
class Ready:
    """Work to do, in this order, before calling ``advance(ready)``.

    1. Persist, durably: ``snapshot`` if set (it replaces the stored log: discard every stored
       entry), then ``entries`` (discard stored entries with index >= ``entries[0].index``,
       then append), then ``hard_state`` if set.
    2. Send ``messages`` (they may depend on what was just persisted, e.g. a vote).
    3. If ``snapshot`` is set, restore the application state from ``snapshot.data``; then apply
       ``committed_entries`` in order (they start right after the last applied index).
    4. React to ``soft_state`` (leadership changes) and ``cluster_conflicts`` (fatal).
    5. ``node.advance(ready)``; call ``ready()`` again only after that.
    """

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    messages: list[Message] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    soft_state: SoftState | None = None
    cluster_conflicts: list[ClusterConflict] = field(default_factory=list)

    def must_sync(self) -> bool:
        """True when something must reach the disk before the messages may leave."""
        return bool(self.snapshot is not None or self.entries or self.hard_state is not None)
