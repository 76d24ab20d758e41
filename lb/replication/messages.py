"""Values exchanged between a partition leader, its followers and the controller.

These are plain frozen records, not wire formats: the Trio layer maps them onto the replication
subjects (``<ns>.<stream>.<partition>.replicate`` / ``.offset``) and the metadata ops. Keeping
them free of bytes lets the simulator and the unit tests drive the cores directly.

Offsets follow Liftbridge and ``lb.storage``: the log end offset (LEO) is the offset the next
message will get; the high watermark (HW) is the offset of the last committed message, -1 when
nothing is committed. So ``-1 <= HW <= LEO - 1`` always holds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

UNDEFINED = -1
"""No epoch / no offset (same value as ``lb.storage.epochs.UNDEFINED``)."""


class EpochLookup(Protocol):
    """What the cores need from a leader-epoch cache (``lb.storage.epochs.LeaderEpochCache``
    has exactly this method; the simulator has an in-memory twin)."""

    def end_offset_for(self, epoch: int) -> tuple[int, int]:
        """(largest known epoch <= ``epoch``, the end offset of that epoch) or (-1, -1)."""
        ...

    @property
    def latest_epoch(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """A follower asks for data from ``fetch_offset`` (which is also its LEO).

    ``leader_epoch`` is the leader generation the follower has truncated against; a leader only
    counts fetches made under its own epoch, so a follower that still holds an unreconciled
    tail from an older epoch can never make the leader commit past a divergence.
    """

    replica_id: str
    leader_epoch: int
    fetch_offset: int


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """The leader's answer: its epoch and HW always; ``first_offset``/``last_offset`` of the
    returned batches when ``has_batches``. ``error`` is set when the leader refused the fetch
    (see :class:`FetchVerdict`); then nothing else but ``leader_epoch`` is meaningful."""

    leader_epoch: int
    hw: int
    has_batches: bool = False
    first_offset: int = UNDEFINED
    last_offset: int = UNDEFINED
    error: FetchVerdict | None = None


class FetchVerdict(enum.Enum):
    """How a leader judged one fetch request."""

    OK = "ok"
    STALE_EPOCH = "stale_epoch"
    """The request names another leader epoch: ignore it (the follower has not truncated for
    this epoch yet, or the leader is deposed)."""
    NOT_A_REPLICA = "not_a_replica"
    OFFSET_AHEAD = "offset_ahead"
    """The follower claims more than the leader has: it must truncate again before fetching."""


class OutcomeKind(enum.Enum):
    ACCEPTED = "accepted"
    DROPPED = "dropped"
    RETRUNCATE = "retruncate"
    """The leader said OFFSET_AHEAD: run the epoch-based truncation again."""


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """What a follower does with one response.

    ``ACCEPTED``: append the response's batches (if ``append``) so the LEO becomes ``leo``,
    then set the local HW to ``hw``. ``DROPPED``: ignore the response (``reason`` says why).
    ``caught_up`` says the follower reached the leader's LEO (empty response): it may idle.
    """

    kind: OutcomeKind
    leo: int
    hw: int
    append: bool = False
    caught_up: bool = False
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.kind is OutcomeKind.ACCEPTED


@dataclass(frozen=True, slots=True)
class EpochRequest:
    """KIP-101 "leader epoch -> end offset" request: where does ``epoch`` end on the leader?
    ``leader_epoch`` is the generation the follower is following (the leader answers only its
    own generation)."""

    replica_id: str
    leader_epoch: int
    epoch: int


@dataclass(frozen=True, slots=True)
class EpochResponse:
    """(largest leader epoch <= ``requested_epoch``, its end offset); (-1, -1) when unknown.
    ``error`` is True when the leader is not at ``leader_epoch``. ``requested_epoch`` echoes
    the request so that a late duplicate of an earlier answer is recognised and dropped."""

    leader_epoch: int
    requested_epoch: int
    epoch: int
    end_offset: int
    error: bool = False


@dataclass(frozen=True, slots=True)
class Truncation:
    """Where a follower cuts its log (``offset`` becomes the new LEO) and whether it must ask
    again with its new latest epoch (``done`` False; KIP-279 iteration)."""

    offset: int
    done: bool
    below_hw: bool = False
    """Only with ``unclean_ok``: the cut removes offsets the follower had as committed."""


class IsrChangeKind(enum.Enum):
    SHRINK = "shrink"
    EXPAND = "expand"


@dataclass(frozen=True, slots=True)
class IsrChange:
    """A proposal for the controller: remove/add ``replica``.

    ``partition_epoch`` is the ISR version (partition epoch) the proposal was based on. The
    controller must apply it only while the partition epoch is still that value (a conditional
    update, as Kafka's AlterPartition): a delayed or duplicated proposal can then never undo a
    newer ISR decision.
    """

    kind: IsrChangeKind
    replica: str
    leader: str
    leader_epoch: int
    partition_epoch: int
