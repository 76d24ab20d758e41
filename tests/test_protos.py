"""The generated code is fresh, and betterproto's bytes equal an independent implementation's.

The independent implementation is Google's protobuf runtime (upb) with classes that grpcio-tools
generates from the same ``protos/api.proto`` into a temporary directory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lb._proto import proto as bp

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_service_shape_matches_liftbridge(pb2) -> None:  # type: ignore[no-untyped-def]
    service = pb2.DESCRIPTOR.services_by_name["API"]
    assert pb2.DESCRIPTOR.package == "proto"
    kinds = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert len(kinds) == 16
    assert kinds["Subscribe"] == (False, True)
    assert kinds["PublishAsync"] == (True, True)
    unary = set(kinds) - {"Subscribe", "PublishAsync"}
    assert all(kinds[name] == (False, False) for name in unary)
    assert unary == {
        "CreateStream",
        "DeleteStream",
        "PauseStream",
        "SetStreamReadonly",
        "FetchMetadata",
        "FetchPartitionMetadata",
        "Publish",
        "PublishToSubject",
        "SetCursor",
        "FetchCursor",
        "JoinConsumerGroup",
        "LeaveConsumerGroup",
        "FetchConsumerGroupAssignments",
        "ReportConsumerGroupCoordinator",
    }


def _cases(pb):  # type: ignore[no-untyped-def]
    """Representative messages as (betterproto object, equivalent upb object)."""
    return [
        (
            bp.CreateStreamRequest(
                subject="foo.*",
                name="foo-stream",
                group="g",
                replication_factor=-1,
                partitions=3,
                retention_max_bytes=bp.NullableInt64(value=1 << 40),
                retention_max_age=bp.NullableInt64(value=0),
                compact_enabled=bp.NullableBool(True),
                min_isr=bp.NullableInt32(2),
                encryption=bp.NullableBool(False),
            ),
            pb.CreateStreamRequest(
                subject="foo.*",
                name="foo-stream",
                group="g",
                replicationFactor=-1,
                partitions=3,
                retentionMaxBytes=pb.NullableInt64(value=1 << 40),
                retentionMaxAge=pb.NullableInt64(value=0),
                compactEnabled=pb.NullableBool(value=True),
                minIsr=pb.NullableInt32(value=2),
                encryption=pb.NullableBool(value=False),
            ),
        ),
        (
            bp.Message(
                offset=1 << 33,
                key=b"k",
                value=bytes(range(256)),
                timestamp=1_700_000_000_123_456_789,
                stream="s",
                partition=7,
                subject="foo.7",
                reply_subject="_INBOX.x",
                headers={"reply": b"_INBOX.x", "subject": b"foo.7"},
                ack_inbox="acks",
                correlation_id="c-1",
                ack_policy=bp.AckPolicy.ALL,
            ),
            pb.Message(
                offset=1 << 33,
                key=b"k",
                value=bytes(range(256)),
                timestamp=1_700_000_000_123_456_789,
                stream="s",
                partition=7,
                subject="foo.7",
                replySubject="_INBOX.x",
                headers={"reply": b"_INBOX.x", "subject": b"foo.7"},
                ackInbox="acks",
                correlationId="c-1",
                ackPolicy=pb.ALL,
            ),
        ),
        (
            bp.PublishRequest(
                key=b"",
                value=b"v",
                stream="s",
                partition=-1,
                ack_policy=bp.AckPolicy.NONE,
                expected_offset=-1,
            ),
            pb.PublishRequest(
                value=b"v", stream="s", partition=-1, ackPolicy=pb.NONE, expectedOffset=-1
            ),
        ),
        (
            bp.PublishResponse(
                ack=bp.Ack(stream="s", offset=5, ack_error=bp.AckError.INCORRECT_OFFSET),
                async_error=bp.PublishAsyncError(
                    code=bp.PublishAsyncErrorCode.INCORRECT_OFFSET,
                    message="incorrect expected offset",
                ),
                correlation_id="c",
            ),
            pb.PublishResponse(
                ack=pb.Ack(stream="s", offset=5, ackError=pb.Ack.INCORRECT_OFFSET),
                asyncError=pb.PublishAsyncError(
                    code=pb.PublishAsyncError.INCORRECT_OFFSET, message="incorrect expected offset"
                ),
                correlationId="c",
            ),
        ),
        (
            bp.SubscribeRequest(
                stream="s",
                partition=1,
                start_position=bp.StartPosition.TIMESTAMP,
                start_timestamp=123,
                read_isr_replica=True,
                stop_position=bp.StopPosition.STOP_OFFSET,
                stop_offset=99,
                consumer=bp.Consumer(group_id="g", group_epoch=2, consumer_id="c"),
            ),
            pb.SubscribeRequest(
                stream="s",
                partition=1,
                startPosition=pb.TIMESTAMP,
                startTimestamp=123,
                readISRReplica=True,
                stopPosition=pb.STOP_OFFSET,
                stopOffset=99,
                consumer=pb.Consumer(groupId="g", groupEpoch=2, consumerId="c"),
            ),
        ),
    ]


def test_wire_bytes_equal_independent_implementation(pb2) -> None:  # type: ignore[no-untyped-def]
    for ours, theirs in _cases(pb2):
        expected = theirs.SerializeToString(deterministic=True)
        # Maps are written in key order by upb's deterministic mode; the cases insert keys in
        # that order, so the bytes must match exactly.
        assert bytes(ours) == expected, type(ours).__name__
        assert type(theirs).FromString(bytes(ours)) == theirs, type(ours).__name__
        assert type(ours).FromString(expected) == ours, type(ours).__name__


def test_metadata_map_round_trip(pb2) -> None:  # type: ignore[no-untyped-def]
    pb = pb2
    ours = bp.FetchMetadataResponse(
        brokers=[bp.Broker(id="a", host="127.0.0.1", port=9292, partition_count=2, leader_count=1)],
        stream_metadata=[
            bp.StreamMetadata(
                name="s",
                subject="foo",
                creation_timestamp=1,
                partitions={
                    0: bp.PartitionMetadata(
                        id=0,
                        leader="a",
                        replicas=["a"],
                        isr=["a"],
                        high_watermark=-1,
                        newest_offset=-1,
                    )
                },
            )
        ],
    )
    theirs = pb.FetchMetadataResponse.FromString(bytes(ours))
    assert theirs.brokers[0].leaderCount == 1
    assert theirs.streamMetadata[0].partitions[0].highWatermark == -1
    assert bp.FetchMetadataResponse().parse(theirs.SerializeToString()) == ours


def test_empty_map_values_parse_equal(pb2) -> None:  # type: ignore[no-untyped-def]
    """Map entries with an empty value: upb writes the empty field, betterproto omits it.

    Both are valid protobuf; each implementation must read the other's bytes to the same value.
    """
    ours = bp.Message(headers={"reply": b""})
    theirs = pb2.Message(headers={"reply": b""})
    assert pb2.Message.FromString(bytes(ours)) == theirs
    assert bp.Message().parse(theirs.SerializeToString()) == ours
