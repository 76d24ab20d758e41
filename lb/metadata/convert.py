"""Conversions between the metadata model and the generated ``lbinternal`` messages."""

from __future__ import annotations

from lb._proto import lbinternal as pb
from lb.metadata.model import (
    STREAM_CONFIG_FIELDS,
    ConsumerGroup,
    Partition,
    ServerInfo,
    Stream,
    StreamConfig,
)


def config_to_proto(config: StreamConfig) -> pb.StreamConfig:
    return pb.StreamConfig(**{name: getattr(config, name) for name in STREAM_CONFIG_FIELDS})


def config_from_proto(msg: pb.StreamConfig) -> StreamConfig:
    return StreamConfig(**{name: getattr(msg, name) for name in STREAM_CONFIG_FIELDS})


def partition_to_proto(p: Partition) -> pb.PartitionRecord:
    return pb.PartitionRecord(
        id=p.id,
        replicas=list(p.replicas),
        leader=p.leader,
        isr=list(p.isr),
        epoch=p.epoch,
        leader_epoch=p.leader_epoch,
        paused=p.paused,
        readonly=p.readonly,
    )


def partition_from_proto(stream: str, msg: pb.PartitionRecord) -> Partition:
    return Partition(
        stream=stream,
        id=msg.id,
        replicas=tuple(msg.replicas),
        leader=msg.leader,
        isr=tuple(msg.isr),
        epoch=msg.epoch,
        leader_epoch=msg.leader_epoch,
        paused=msg.paused,
        readonly=msg.readonly,
    )


def stream_to_proto(s: Stream) -> pb.StreamRecord:
    return pb.StreamRecord(
        name=s.name,
        subject=s.subject,
        group=s.group,
        creation_timestamp_ns=s.creation_timestamp_ns,
        replication_factor=s.replication_factor,
        config=config_to_proto(s.config),
        partitions=[partition_to_proto(p) for p in s.partitions],
        resume_all=s.resume_all,
    )


def stream_from_proto(msg: pb.StreamRecord) -> Stream:
    return Stream(
        name=msg.name,
        subject=msg.subject,
        group=msg.group,
        creation_timestamp_ns=msg.creation_timestamp_ns,
        replication_factor=msg.replication_factor,
        config=config_from_proto(msg.config),
        partitions=tuple(partition_from_proto(msg.name, p) for p in msg.partitions),
        resume_all=msg.resume_all,
    )


def server_to_proto(s: ServerInfo) -> pb.ServerRecord:
    return pb.ServerRecord(id=s.id, host=s.host, port=s.port)


def server_from_proto(msg: pb.ServerRecord) -> ServerInfo:
    return ServerInfo(id=msg.id, host=msg.host, port=msg.port)


def group_to_proto(g: ConsumerGroup) -> pb.ConsumerGroupRecord:
    return pb.ConsumerGroupRecord(
        id=g.id,
        coordinator=g.coordinator,
        epoch=g.epoch,
        members=[pb.ConsumerRecord(id=cid, streams=list(streams)) for cid, streams in g.members],
    )


def group_from_proto(msg: pb.ConsumerGroupRecord) -> ConsumerGroup:
    return ConsumerGroup(
        id=msg.id,
        coordinator=msg.coordinator,
        epoch=msg.epoch,
        members=tuple((m.id, tuple(m.streams)) for m in msg.members),
    )
