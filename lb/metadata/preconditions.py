"""Checks shared by the state machine (at apply) and the controller (before proposing).

Running the same function in both places keeps the fast path (reject before a Raft round
trip) and the authoritative path (reject at apply, when a racing op got there first) from
drifting apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.metadata.errors import (
    PARTITION_DOES_NOT_EXIST,
    STREAM_DOES_NOT_EXIST,
    STREAM_NOT_FOUND,
    leader_generation_mismatch,
    no_such_partition,
    not_found,
)
from lb.metadata.model import MetadataState, Partition, Stream


def require_stream(state: MetadataState, name: str, text: str = STREAM_DOES_NOT_EXIST) -> Stream:
    stream = state.streams.get(name)
    if stream is None:
        raise not_found(text)
    return stream


def resolve_partition_ids(
    state: MetadataState, name: str, partitions: Sequence[int]
) -> tuple[Stream, tuple[int, ...]]:
    """Stream and target ids for Pause and SetStreamReadonly (PAUSE-1, RO-1).

    An empty list targets every partition. Texts: an unknown stream is NotFound "stream not
    found" when the list is empty (Liftbridge checks that in its API layer) and "stream does
    not exist" otherwise; an unknown id is NotFound "partition does not exist". Duplicate ids
    are dropped, first occurrence kept.
    """
    stream = require_stream(
        state, name, STREAM_NOT_FOUND if not partitions else STREAM_DOES_NOT_EXIST
    )
    if not partitions:
        return stream, tuple(range(len(stream.partitions)))
    ids = tuple(dict.fromkeys(partitions))
    for pid in ids:
        if stream.partition(pid) is None:
            raise not_found(PARTITION_DOES_NOT_EXIST)
    return stream, ids


def require_partition(state: MetadataState, stream: str, partition_id: int) -> Partition:
    """The partition, or FailedPrecondition "No such partition [...]" (ISR/leader requests)."""
    partition = state.partition(stream, partition_id)
    if partition is None:
        raise no_such_partition(stream, partition_id)
    return partition


def check_leader_generation(
    state: MetadataState, stream: str, partition_id: int, leader: str, leader_epoch: int
) -> Partition:
    """The partition if ``leader``/``leader_epoch`` is its current leader generation; else
    FailedPrecondition "No such partition ..." or "Leader generation mismatch ..." (REPL-4)."""
    partition = require_partition(state, stream, partition_id)
    if partition.leader != leader or partition.leader_epoch != leader_epoch:
        raise leader_generation_mismatch(
            partition.leader, partition.leader_epoch, leader, leader_epoch
        )
    return partition
