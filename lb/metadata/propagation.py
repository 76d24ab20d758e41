"""Build and parse the messages a follower uses to forward a metadata request to the Raft
leader over NATS (API-CREATE-9). The leader answers with the status it would have returned
itself; the follower relays code and text unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import betterproto

from lb._proto import lbinternal as pb
from lb.metadata import ops
from lb.metadata.convert import config_to_proto
from lb.metadata.errors import ErrorCode, MetadataError, internal
from lb.metadata.failover import LeaderReport
from lb.metadata.model import StreamConfig

PropagatedRequest = pb.PropagatedRequest
PropagatedResponse = pb.PropagatedResponse

REQUEST_KINDS: tuple[str, ...] = (
    "create_stream",
    "delete_stream",
    "pause_stream",
    "resume_stream",
    "set_stream_readonly",
    "shrink_isr",
    "expand_isr",
    "report_leader",
    "register_server",
    "leader_restarted",
    "confirm_leader",
)


def create_stream_request(
    *,
    name: str,
    subject: str,
    partitions: int = 0,
    replication_factor: int = 0,
    group: str = "",
    config: StreamConfig | None = None,
) -> pb.PropagatedRequest:
    return pb.PropagatedRequest(
        create_stream=pb.CreateStreamRequest(
            name=name,
            subject=subject,
            group=group,
            replication_factor=replication_factor,
            partitions=partitions,
            config=config_to_proto(config or StreamConfig()),
        )
    )


def _request(op: pb.MetadataOp) -> pb.PropagatedRequest:
    """The request that asks the leader for ``op`` (requests that map 1:1 onto an op reuse the
    op message, see internal.proto)."""
    kind = ops.op_kind(op)
    return pb.PropagatedRequest(**{kind: getattr(op, kind)})


def delete_stream_request(name: str) -> pb.PropagatedRequest:
    return _request(ops.delete_stream_op(name))


def pause_stream_request(
    name: str, partitions: Iterable[int] = (), resume_all: bool = False
) -> pb.PropagatedRequest:
    return _request(ops.pause_stream_op(name, partitions, resume_all))


def resume_stream_request(name: str, partitions: Iterable[int] = ()) -> pb.PropagatedRequest:
    return _request(ops.resume_stream_op(name, partitions))


def set_stream_readonly_request(
    name: str, partitions: Iterable[int] = (), readonly: bool = True
) -> pb.PropagatedRequest:
    return _request(ops.set_stream_readonly_op(name, partitions, readonly))


def shrink_isr_request(
    stream: str,
    partition: int,
    replica: str,
    leader: str,
    leader_epoch: int,
    partition_epoch: int = 0,
) -> pb.PropagatedRequest:
    return _request(
        ops.shrink_isr_op(stream, partition, replica, leader, leader_epoch, partition_epoch)
    )


def expand_isr_request(
    stream: str,
    partition: int,
    replica: str,
    leader: str,
    leader_epoch: int,
    partition_epoch: int = 0,
) -> pb.PropagatedRequest:
    return _request(
        ops.expand_isr_op(stream, partition, replica, leader, leader_epoch, partition_epoch)
    )


def report_leader_request(report: LeaderReport) -> pb.PropagatedRequest:
    return pb.PropagatedRequest(report_leader=report.to_proto())


def register_server_request(server_id: str, host: str, port: int) -> pb.PropagatedRequest:
    return _request(ops.register_server_op(server_id, host, port))


def leader_restarted_request(
    stream: str, partition: int, leader: str, leader_epoch: int
) -> pb.PropagatedRequest:
    return pb.PropagatedRequest(
        leader_restarted=pb.LeaderRestartedRequest(
            stream=stream, partition=partition, leader=leader, leader_epoch=leader_epoch
        )
    )


def confirm_leader_request(
    stream: str, partition: int, leader: str, leader_epoch: int
) -> pb.PropagatedRequest:
    """Ask whether ``leader`` still leads ``stream``/``partition`` in ``leader_epoch``: the
    controller answers after a round through the Raft log, so the answer is current."""
    return _request(ops.confirm_leader_op(stream, partition, leader, leader_epoch))


def encode_request(request: pb.PropagatedRequest) -> bytes:
    return bytes(request)


def decode_request(data: bytes) -> tuple[str, betterproto.Message]:
    """Parse a forwarded request into (kind, body), kind being one of ``REQUEST_KINDS``.
    Raises ``MetadataError`` (INTERNAL) for garbage or an unknown kind."""
    try:
        msg = pb.PropagatedRequest().parse(data)
    except Exception as exc:  # betterproto raises assorted errors on garbage
        raise internal(f"undecodable propagated request: {exc}") from exc
    kind, body = betterproto.which_one_of(msg, "request")
    if kind not in REQUEST_KINDS or body is None:
        raise internal(f"unknown propagated request {kind or '(none)'}")
    return kind, body


def encode_response(error: MetadataError | None) -> bytes:
    """The leader's answer: OK, or the error's code and text."""
    if error is None:
        return bytes(pb.PropagatedResponse(code=pb.PropagatedResponseCode.OK))
    return bytes(
        pb.PropagatedResponse(
            code=pb.PropagatedResponseCode(error.code.grpc_code), message=error.message
        )
    )


def decode_response(data: bytes) -> MetadataError | None:
    """The follower's view of the answer: None for OK, else the error to relay. gRPC codes
    outside the metadata taxonomy come back as UNKNOWN with the leader's text."""
    try:
        msg = pb.PropagatedResponse().parse(data)
    except Exception as exc:  # betterproto raises assorted errors on garbage
        raise internal(f"undecodable propagated response: {exc}") from exc
    code = int(msg.code)
    if code == 0:
        return None
    return MetadataError(ErrorCode.from_grpc_code(code), msg.message)
