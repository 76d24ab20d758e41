"""Query helpers for the gRPC layer (META-1/4, PAUSE-4) and propagation messages."""

from __future__ import annotations

import pytest

from lb._proto import lbinternal as pb
from lb.metadata import ops, propagation
from lb.metadata.errors import ErrorCode, MetadataError
from lb.metadata.failover import LeaderReport
from lb.metadata.fsm import MetadataFSM
from lb.metadata.model import StreamConfig
from lb.metadata.placement import Placement
from lb.metadata.queries import (
    BrokerView,
    Role,
    UnknownStream,
    broker_views,
    check_writable,
    partition_for_fetch_metadata,
    partition_role,
    partitions_led_by,
    partitions_replicated_by,
    partitions_to_resume,
    publish_target,
    stream_views,
    subscribe_target,
)


def _fsm() -> MetadataFSM:
    fsm = MetadataFSM()
    i = 0

    def apply(op: ops.MetadataOp) -> None:
        nonlocal i
        i += 1
        assert fsm.apply(op, i).ok

    apply(
        ops.create_stream_op(
            name="foo",
            subject="foo",
            placements=[Placement(0, ("a", "b"), "a"), Placement(1, ("b", "c"), "b")],
            creation_timestamp_ns=1,
        )
    )
    apply(
        ops.create_stream_op(
            name="bar",
            subject="bar",
            placements=[Placement(0, ("a",), "a"), Placement(1, ("c", "a"), "c")],
            creation_timestamp_ns=2,
        )
    )
    for sid, port in (("a", 9292), ("b", 9293), ("c", 9294)):
        apply(ops.register_server_op(sid, "localhost", port))
    return fsm


def test_stream_views() -> None:
    state = _fsm().state
    assert [s.name for s in stream_views(state)] == ["bar", "foo"]  # type: ignore[union-attr]
    views = stream_views(state, ["foo", "nope", "bar"])
    assert views[0] is state.streams["foo"]
    assert views[1] == UnknownStream("nope")
    assert views[2] is state.streams["bar"]


def test_broker_views_counts_and_order() -> None:
    fsm = _fsm()
    assert broker_views(fsm.state, ["a", "b", "c", "unregistered"], first="c") == [
        BrokerView("c", "localhost", 9294, partition_count=2, leader_count=1),
        BrokerView("a", "localhost", 9292, partition_count=3, leader_count=2),
        BrokerView("b", "localhost", 9293, partition_count=2, leader_count=1),
    ]
    # META-4: paused partitions are left out of the counts.
    assert fsm.apply(ops.pause_stream_op("bar"), 100).ok
    views = {b.id: b for b in broker_views(fsm.state, ["a", "b", "c"])}
    assert (views["a"].partition_count, views["a"].leader_count) == (1, 1)
    assert (views["c"].partition_count, views["c"].leader_count) == (1, 0)


def test_partitions_by_server_and_roles() -> None:
    state = _fsm().state
    assert [(p.stream, p.id) for p in partitions_led_by(state, "a")] == [("bar", 0), ("foo", 0)]
    assert [(p.stream, p.id) for p in partitions_replicated_by(state, "c")] == [
        ("bar", 1),
        ("foo", 1),
    ]
    foo0 = state.streams["foo"].partitions[0]
    assert partition_role(foo0, "a") is Role.LEADER
    assert partition_role(foo0, "b") is Role.FOLLOWER
    assert partition_role(foo0, "c") is Role.NONE


def test_paused_role() -> None:
    fsm = _fsm()
    assert fsm.apply(ops.pause_stream_op("foo", [0]), 100).ok
    foo0 = fsm.state.streams["foo"].partitions[0]
    assert partition_role(foo0, "a") is Role.PAUSED
    assert partition_role(foo0, "c") is Role.NONE


def test_partitions_to_resume() -> None:
    fsm = _fsm()
    assert partitions_to_resume(fsm.state, "foo", 0) == []
    assert fsm.apply(ops.pause_stream_op("foo"), 100).ok
    assert partitions_to_resume(fsm.state, "foo", 1) == [1]  # only the target
    assert fsm.apply(ops.pause_stream_op("foo", [0], resume_all=True), 101).ok
    assert partitions_to_resume(fsm.state, "foo", 1) == [0, 1]  # resume_all: every paused one
    assert fsm.apply(ops.resume_stream_op("foo", [0, 1]), 102).ok
    assert partitions_to_resume(fsm.state, "foo", 1) == []
    with pytest.raises(MetadataError, match=r"^No such stream: nope$"):
        partitions_to_resume(fsm.state, "nope", 0)
    with pytest.raises(MetadataError, match=r"^No such partition: 7$"):
        partitions_to_resume(fsm.state, "foo", 7)


# ----- propagation -----


def test_request_round_trips() -> None:
    cfg = StreamConfig(retention_max_messages=0, compact_enabled=True)
    cases = [
        (
            propagation.create_stream_request(
                name="foo", subject="foo.>", partitions=3, replication_factor=-1, config=cfg
            ),
            "create_stream",
        ),
        (propagation.delete_stream_request("foo"), "delete_stream"),
        (propagation.pause_stream_request("foo", [1], resume_all=True), "pause_stream"),
        (propagation.resume_stream_request("foo", [1]), "resume_stream"),
        (propagation.set_stream_readonly_request("foo", [], readonly=False), "set_stream_readonly"),
        (propagation.shrink_isr_request("foo", 0, "b", "a", 7), "shrink_isr"),
        (propagation.expand_isr_request("foo", 0, "b", "a", 7), "expand_isr"),
        (
            propagation.report_leader_request(LeaderReport("foo", 0, "b", "a", 7)),
            "report_leader",
        ),
        (propagation.register_server_request("a", "localhost", 9292), "register_server"),
        (propagation.leader_restarted_request("foo", 0, "a", 7), "leader_restarted"),
        (propagation.confirm_leader_request("foo", 0, "a", 7), "confirm_leader"),
    ]
    assert {k for _, k in cases} == set(propagation.REQUEST_KINDS)
    for request, kind in cases:
        got_kind, body = propagation.decode_request(propagation.encode_request(request))
        assert got_kind == kind
        assert bytes(body) == bytes(getattr(request, kind))
    _, body = propagation.decode_request(propagation.encode_request(cases[0][0]))
    assert isinstance(body, pb.CreateStreamRequest)
    assert body.config.retention_max_messages == 0
    assert body.config.retention_max_bytes is None
    assert body.config.compact_enabled is True


def test_pause_request_body_is_an_op() -> None:
    # Requests that map 1:1 onto ops reuse the op message: the leader proposes it as is.
    _, body = propagation.decode_request(
        propagation.encode_request(propagation.pause_stream_request("foo", [0]))
    )
    fsm = _fsm()
    assert isinstance(body, pb.PauseStreamOp)
    assert fsm.apply(pb.MetadataOp(pause_stream=body), 100).ok


def test_bad_requests() -> None:
    with pytest.raises(MetadataError, match=r"^unknown propagated request \(none\)$"):
        propagation.decode_request(b"")
    with pytest.raises(MetadataError, match=r"^undecodable propagated request"):
        propagation.decode_request(b"\x0a")


@pytest.mark.parametrize(
    "error",
    [
        None,
        MetadataError(ErrorCode.ALREADY_EXISTS, "stream already exists"),
        MetadataError(ErrorCode.NOT_FOUND, "stream does not exist"),
        MetadataError(ErrorCode.INVALID_ARGUMENT, "Invalid replicationFactor 4, cluster size 3"),
        MetadataError(ErrorCode.FAILED_PRECONDITION, "No ISR candidates"),
        MetadataError(
            ErrorCode.INTERNAL, "Failed to replicate partition: raft operation timed out"
        ),
        MetadataError(ErrorCode.UNKNOWN, "failed to publish to NATS: x"),
    ],
)
def test_response_round_trip(error: MetadataError | None) -> None:
    assert propagation.decode_response(propagation.encode_response(error)) == error


def test_response_uses_grpc_numbers() -> None:
    data = propagation.encode_response(MetadataError(ErrorCode.NOT_FOUND, "x"))
    msg = pb.PropagatedResponse().parse(data)
    assert int(msg.code) == 5 and msg.message == "x"
    unavailable = bytes(
        pb.PropagatedResponse(code=pb.PropagatedResponseCode.UNAVAILABLE, message="y")
    )
    assert propagation.decode_response(unavailable) == MetadataError(ErrorCode.UNKNOWN, "y")


# ----- per-partition lookups with their texts -----


def test_partition_for_fetch_metadata() -> None:
    fsm = _fsm()
    p = partition_for_fetch_metadata(fsm.state, "foo", 1, "b")
    assert (p.stream, p.id) == ("foo", 1)
    with pytest.raises(MetadataError) as info:
        partition_for_fetch_metadata(fsm.state, "foo", 2, "b")
    assert (info.value.code, info.value.message) == (ErrorCode.NOT_FOUND, "partition not found")
    with pytest.raises(MetadataError) as info:
        partition_for_fetch_metadata(fsm.state, "foo", 1, "c")
    assert (info.value.code, info.value.message) == (
        ErrorCode.FAILED_PRECONDITION,
        "The request should be sent to partition leader",
    )
    assert fsm.apply(ops.pause_stream_op("foo", [1]), 100).ok
    with pytest.raises(MetadataError, match=r"^The request should be sent to partition leader$"):
        partition_for_fetch_metadata(fsm.state, "foo", 1, "b")


def test_publish_and_subscribe_targets() -> None:
    fsm = _fsm()
    assert publish_target(fsm.state, "foo", 1).id == 1
    cases = [
        ("", 0, ErrorCode.INVALID_ARGUMENT, "no stream provided"),
        ("nope", 0, ErrorCode.NOT_FOUND, "no such stream: nope"),
        ("foo", 2, ErrorCode.NOT_FOUND, "no such partition: 2"),
        ("foo", -1, ErrorCode.NOT_FOUND, "no such partition: -1"),
    ]
    for stream, pid, code, text in cases:
        with pytest.raises(MetadataError) as info:
            publish_target(fsm.state, stream, pid)
        assert (info.value.code, info.value.message) == (code, text)
    check_writable(publish_target(fsm.state, "foo", 1))
    assert fsm.apply(ops.set_stream_readonly_op("foo", [1], True), 100).ok
    with pytest.raises(MetadataError) as info:
        check_writable(publish_target(fsm.state, "foo", 1))
    assert (info.value.code, info.value.message) == (
        ErrorCode.FAILED_PRECONDITION,
        "readonly partition: 1",
    )
    assert subscribe_target(fsm.state, "foo", 0).id == 0
    for stream, pid in (("nope", 0), ("foo", 9)):
        with pytest.raises(MetadataError) as info:
            subscribe_target(fsm.state, stream, pid)
        assert (info.value.code, info.value.message) == (ErrorCode.NOT_FOUND, "No such partition")
