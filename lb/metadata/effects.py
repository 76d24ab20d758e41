"""Effects: what the server must do after the state machine applied an op.

The state machine changes only replicated metadata. Everything local (starting or stopping a
partition's leader/follower role, closing or deleting logs, waking or ending subscribers,
activity events, broker caches) is the server's job, driven by these values. Each effect
carries the new immutable records, so the server needs no second look at the state. Every
server gets the same effects; each acts only on the partitions it replicates.
"""

from __future__ import annotations

from dataclasses import dataclass

from lb.metadata.model import Partition, ServerInfo, Stream


@dataclass(frozen=True, slots=True)
class StreamCreated:
    """A stream exists. Replicas create the partition logs and start leading or following
    (``partition.leader``, ``partition.leader_epoch``). Activity: CREATE_STREAM."""

    stream: Stream


@dataclass(frozen=True, slots=True)
class StreamDeleted:
    """A stream is gone. Replicas stop its partitions, end subscribers with NotFound "commit
    log was deleted" and delete ``<data>/streams/<name>``. Activity: DELETE_STREAM."""

    stream: Stream


@dataclass(frozen=True, slots=True)
class PartitionsPaused:
    """A pause was applied to ``partitions`` (the requested ids, all ids when the request named
    none). ``newly_paused`` are those that were running: replicas stop their roles, close the
    logs and end subscribers with FailedPrecondition "commit log was closed". Pause timestamps
    move for every id in ``partitions``. Activity: PAUSE_STREAM(partitions, resume_all)."""

    stream: str
    partitions: tuple[int, ...]
    resume_all: bool
    newly_paused: tuple[Partition, ...]


@dataclass(frozen=True, slots=True)
class PartitionsResumed:
    """A resume was applied to ``partitions``; ``resumed`` were paused and now run again
    (replicas reopen logs and start leading or following). Activity: RESUME_STREAM."""

    stream: str
    partitions: tuple[int, ...]
    resumed: tuple[Partition, ...]


@dataclass(frozen=True, slots=True)
class ReadonlyChanged:
    """Readonly was set to ``readonly`` on ``partitions`` (every listed id, changed or not:
    readonly timestamps move on every call, RO-6). Replicas enforce the flag on the log and
    wake readers waiting at the end (RO-4). Activity: SET_STREAM_READONLY."""

    stream: str
    partitions: tuple[Partition, ...]
    readonly: bool


@dataclass(frozen=True, slots=True)
class IsrChanged:
    """The ISR of a partition changed (``partition.epoch`` moved). The leader re-checks what
    can commit (REPL-6) and its min-ISR state. Exactly one of ``added``/``removed`` is set."""

    partition: Partition
    added: str | None = None
    removed: str | None = None


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    """A partition has a new leader generation. The new leader starts leading, the others
    follow it; the previous leader stops leading."""

    partition: Partition
    previous_leader: str


@dataclass(frozen=True, slots=True)
class ServerRegistered:
    """A server's advertised address is new or changed (broker list caches drop it)."""

    server: ServerInfo


@dataclass(frozen=True, slots=True)
class StateRestored:
    """The state was replaced by a snapshot. The server reconciles every local partition with
    ``streams`` (start, stop or delete) and emits no activity events."""

    streams: tuple[Stream, ...]


Effect = (
    StreamCreated
    | StreamDeleted
    | PartitionsPaused
    | PartitionsResumed
    | ReadonlyChanged
    | IsrChanged
    | LeaderChanged
    | ServerRegistered
    | StateRestored
)
