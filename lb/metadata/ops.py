"""Builders for metadata ops (the payload of metadata Raft entries) and their byte encoding.

The controller builds an op, proposes ``encode_op(op)`` to Raft, and every replica's state
machine applies the committed bytes. Builders take model values so callers never touch the
generated classes directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import betterproto

from lb._proto import lbinternal as pb
from lb.metadata.convert import config_to_proto
from lb.metadata.errors import STREAM_EXISTS, already_exists, internal
from lb.metadata.model import MetadataState, StreamConfig
from lb.metadata.placement import Placement, place_partitions
from lb.metadata.validation import normalize_create_counts, validate_create_stream

MetadataOp = pb.MetadataOp

OP_KINDS: tuple[str, ...] = (
    "create_stream",
    "delete_stream",
    "pause_stream",
    "resume_stream",
    "set_stream_readonly",
    "shrink_isr",
    "expand_isr",
    "change_leader",
    "register_server",
    "confirm_leader",
)


def encode_op(op: pb.MetadataOp) -> bytes:
    return bytes(op)


def decode_op(data: bytes) -> pb.MetadataOp:
    """Parse a Raft entry payload; raises ``MetadataError`` (INTERNAL) if it is not one."""
    try:
        return pb.MetadataOp().parse(data)
    except Exception as exc:  # betterproto raises assorted errors on garbage
        raise internal(f"undecodable metadata op: {exc}") from exc


def op_kind(op: pb.MetadataOp) -> str:
    """The name of the op's oneof member ("" when none is set)."""
    name, _ = betterproto.which_one_of(op, "op")
    return name


def create_stream_op(
    *,
    name: str,
    subject: str,
    placements: Sequence[Placement],
    creation_timestamp_ns: int,
    replication_factor: int = 1,
    group: str = "",
    config: StreamConfig | None = None,
) -> pb.MetadataOp:
    return pb.MetadataOp(
        create_stream=pb.CreateStreamOp(
            name=name,
            subject=subject,
            group=group,
            creation_timestamp_ns=creation_timestamp_ns,
            replication_factor=replication_factor,
            config=config_to_proto(config or StreamConfig()),
            partitions=[
                pb.PartitionPlacement(id=p.id, replicas=list(p.replicas), leader=p.leader)
                for p in placements
            ],
        )
    )


def plan_create_stream(
    state: MetadataState,
    members: Sequence[str],
    *,
    name: str,
    subject: str,
    now_ns: int,
    partitions: int = 0,
    replication_factor: int = 0,
    group: str = "",
    config: StreamConfig | None = None,
) -> pb.MetadataOp:
    """Everything the controller does for CreateStream before proposing: defaults, request
    validation, replication-factor check, placement and the creation time.

    Existence is checked here too (fast AlreadyExists) and again at apply, which is the check
    that counts when two creates race. Authz and the encryption precondition belong to the
    server and run before this. Raises ``MetadataError``.
    """
    partitions, replication_factor = normalize_create_counts(partitions, replication_factor)
    validate_create_stream(name, subject, partitions, group)
    placements = place_partitions(
        members, partitions, replication_factor, state.partition_load(), state.leader_load()
    )
    if name in state.streams:
        raise already_exists(STREAM_EXISTS)
    return create_stream_op(
        name=name,
        subject=subject,
        placements=placements,
        creation_timestamp_ns=now_ns,
        replication_factor=replication_factor,
        group=group,
        config=config,
    )


def delete_stream_op(name: str) -> pb.MetadataOp:
    return pb.MetadataOp(delete_stream=pb.DeleteStreamOp(name=name))


def pause_stream_op(
    name: str, partitions: Iterable[int] = (), resume_all: bool = False
) -> pb.MetadataOp:
    """Pause ``partitions`` (none = all) of ``name``."""
    return pb.MetadataOp(
        pause_stream=pb.PauseStreamOp(name=name, partitions=list(partitions), resume_all=resume_all)
    )


def resume_stream_op(name: str, partitions: Iterable[int] = ()) -> pb.MetadataOp:
    """Resume ``partitions`` (none = every paused partition) of ``name``."""
    return pb.MetadataOp(resume_stream=pb.ResumeStreamOp(name=name, partitions=list(partitions)))


def set_stream_readonly_op(
    name: str, partitions: Iterable[int] = (), readonly: bool = True
) -> pb.MetadataOp:
    return pb.MetadataOp(
        set_stream_readonly=pb.SetStreamReadonlyOp(
            name=name, partitions=list(partitions), readonly=readonly
        )
    )


def shrink_isr_op(
    stream: str,
    partition: int,
    replica: str,
    leader: str,
    leader_epoch: int,
    partition_epoch: int = 0,
) -> pb.MetadataOp:
    """``partition_epoch`` (when not 0) makes the change conditional on the ISR version."""
    return pb.MetadataOp(
        shrink_isr=pb.ShrinkIsrOp(
            stream=stream,
            partition=partition,
            replica=replica,
            leader=leader,
            leader_epoch=leader_epoch,
            partition_epoch=partition_epoch,
        )
    )


def expand_isr_op(
    stream: str,
    partition: int,
    replica: str,
    leader: str,
    leader_epoch: int,
    partition_epoch: int = 0,
) -> pb.MetadataOp:
    """``partition_epoch`` (when not 0) makes the change conditional on the ISR version."""
    return pb.MetadataOp(
        expand_isr=pb.ExpandIsrOp(
            stream=stream,
            partition=partition,
            replica=replica,
            leader=leader,
            leader_epoch=leader_epoch,
            partition_epoch=partition_epoch,
        )
    )


def change_leader_op(
    stream: str,
    partition: int,
    leader: str,
    previous_leader: str,
    previous_leader_epoch: int,
) -> pb.MetadataOp:
    return pb.MetadataOp(
        change_leader=pb.ChangeLeaderOp(
            stream=stream,
            partition=partition,
            leader=leader,
            previous_leader=previous_leader,
            previous_leader_epoch=previous_leader_epoch,
        )
    )


def register_server_op(server_id: str, host: str, port: int) -> pb.MetadataOp:
    return pb.MetadataOp(register_server=pb.RegisterServerOp(id=server_id, host=host, port=port))


def confirm_leader_op(stream: str, partition: int, leader: str, leader_epoch: int) -> pb.MetadataOp:
    """A read through the Raft log: applies only if ``leader`` still leads in ``leader_epoch``."""
    return pb.MetadataOp(
        confirm_leader=pb.ConfirmLeaderOp(
            stream=stream, partition=partition, leader=leader, leader_epoch=leader_epoch
        )
    )


__all__ = [
    "OP_KINDS",
    "MetadataOp",
    "change_leader_op",
    "confirm_leader_op",
    "create_stream_op",
    "decode_op",
    "delete_stream_op",
    "encode_op",
    "expand_isr_op",
    "op_kind",
    "pause_stream_op",
    "plan_create_stream",
    "register_server_op",
    "resume_stream_op",
    "set_stream_readonly_op",
    "shrink_isr_op",
]
