"""Read-only views of the metadata state shaped for the gRPC layer and the server.

Everything returned is immutable, so callers may keep results across awaits. Local figures
(high watermark, newest offset, event timestamps) are not metadata: the server adds them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from lb.metadata.errors import failed_precondition, invalid_argument, not_found
from lb.metadata.model import MetadataState, Partition, ServerInfo, Stream


@dataclass(frozen=True, slots=True)
class UnknownStream:
    """A FetchMetadata name that matches no stream (reported as error=UNKNOWN_STREAM)."""

    name: str


@dataclass(frozen=True, slots=True)
class BrokerView:
    """A broker as FetchMetadata lists it; paused partitions are not counted (META-4)."""

    id: str
    host: str
    port: int
    partition_count: int
    leader_count: int


def stream_views(state: MetadataState, names: Sequence[str] = ()) -> list[Stream | UnknownStream]:
    """Streams for FetchMetadata (META-1): all of them in name order when ``names`` is empty,
    else one entry per requested name in request order, ``UnknownStream`` for unknown ones."""
    if not names:
        return [state.streams[n] for n in sorted(state.streams)]
    result: list[Stream | UnknownStream] = []
    for name in names:
        stream = state.streams.get(name)
        result.append(stream if stream is not None else UnknownStream(name))
    return result


def broker_views(
    state: MetadataState, server_ids: Sequence[str], first: str | None = None
) -> list[BrokerView]:
    """Brokers for FetchMetadata: the registered servers among ``server_ids`` (the members the
    server decided to list), ``first`` (the answering server) leading, the rest in the given
    order. Servers without a registered address are left out."""
    partition_load = state.partition_load()
    leader_load = state.leader_load()
    ordered = list(dict.fromkeys(([first] if first is not None else []) + list(server_ids)))
    result: list[BrokerView] = []
    for sid in ordered:
        info: ServerInfo | None = state.servers.get(sid)
        if info is None:
            continue
        result.append(
            BrokerView(
                id=sid,
                host=info.host,
                port=info.port,
                partition_count=partition_load.get(sid, 0),
                leader_count=leader_load.get(sid, 0),
            )
        )
    return result


def partitions_led_by(state: MetadataState, server_id: str) -> list[Partition]:
    """Partitions whose leader is ``server_id`` (paused ones included)."""
    return [p for p in state.iter_partitions() if p.leader == server_id]


def partitions_replicated_by(state: MetadataState, server_id: str) -> list[Partition]:
    """Partitions that have ``server_id`` among their replicas."""
    return [p for p in state.iter_partitions() if server_id in p.replicas]


class Role(enum.Enum):
    """What a server should be running for a partition."""

    LEADER = "leader"
    FOLLOWER = "follower"
    PAUSED = "paused"  # a replica of a paused partition: nothing runs, the log stays
    NONE = "none"  # not a replica


def partition_role(partition: Partition, server_id: str) -> Role:
    if server_id not in partition.replicas:
        return Role.NONE
    if partition.paused:
        return Role.PAUSED
    return Role.LEADER if partition.leader == server_id else Role.FOLLOWER


def partitions_to_resume(state: MetadataState, stream: str, partition_id: int) -> list[int]:
    """Paused partitions that a publish to ``stream``/``partition_id`` must resume first
    (PAUSE-4): every paused partition if the latest pause set resume_all, else the target if
    it is paused. Empty means nothing to resume. Raises NotFound "No such stream: X" /
    "No such partition: N" (Liftbridge's resume texts)."""
    s = state.streams.get(stream)
    if s is None:
        raise not_found(f"No such stream: {stream}")
    if s.resume_all:
        return [p.id for p in s.partitions if p.paused]
    p = s.partition(partition_id)
    if p is None:
        raise not_found(f"No such partition: {partition_id}")
    return [p.id] if p.paused else []


def partition_for_fetch_metadata(
    state: MetadataState, stream: str, partition_id: int, server_id: str
) -> Partition:
    """The partition FetchPartitionMetadata may answer for on ``server_id`` (PMETA-1):
    NotFound "partition not found" if unknown; FailedPrecondition "The request should be sent
    to partition leader" if this server does not lead it or it is paused (PAUSE-7)."""
    partition = state.partition(stream, partition_id)
    if partition is None:
        raise not_found("partition not found")
    if partition.leader != server_id or partition.paused:
        raise failed_precondition("The request should be sent to partition leader")
    return partition


def publish_target(state: MetadataState, stream: str, partition_id: int) -> Partition:
    """The partition a Publish names, with PUB-2's texts: InvalidArgument "no stream
    provided", NotFound "no such stream: X", NotFound "no such partition: N" (negative
    included). The readonly check comes later (after authz): ``check_writable``."""
    if not stream:
        raise invalid_argument("no stream provided")
    s = state.streams.get(stream)
    if s is None:
        raise not_found(f"no such stream: {stream}")
    partition = s.partition(partition_id)
    if partition is None:
        raise not_found(f"no such partition: {partition_id}")
    return partition


def check_writable(partition: Partition) -> None:
    """FailedPrecondition "readonly partition: N" for a readonly partition (RO-2)."""
    if partition.readonly:
        raise failed_precondition(f"readonly partition: {partition.id}")


def subscribe_target(state: MetadataState, stream: str, partition_id: int) -> Partition:
    """The partition a Subscribe names, or NotFound "No such partition" (SUB-2)."""
    partition = state.partition(stream, partition_id)
    if partition is None:
        raise not_found("No such partition")
    return partition
