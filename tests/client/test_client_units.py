"""Pure parts of lb.client: status -> exception mapping, addresses, the metadata cache,
partitioners and the CLI table format. No server."""

from __future__ import annotations

import time

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from lb._proto import proto as api
from lb.client import errors as e
from lb.client.cli import format_table
from lb.client.metadata import BrokerInfo, Metadata, parse_address
from lb.client.partitioners import (
    KeyHashPartitioner,
    RoundRobinPartitioner,
    key_hash_partition,
)
from lb.codec import PublishAsyncErrorCode


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (Status.ALREADY_EXISTS, "stream already exists", e.StreamExistsError),
        (Status.NOT_FOUND, "no such stream: x", e.NoSuchStreamError),
        (Status.NOT_FOUND, "stream does not exist", e.NoSuchStreamError),
        (Status.NOT_FOUND, "no such partition: 4", e.NoSuchPartitionError),
        (Status.NOT_FOUND, "No such partition", e.NoSuchPartitionError),
        (Status.NOT_FOUND, "commit log was deleted", e.StreamDeletedError),
        (Status.FAILED_PRECONDITION, "readonly partition: 0", e.ReadonlyPartitionError),
        (Status.FAILED_PRECONDITION, "Server not partition leader", e.NotLeaderError),
        (Status.FAILED_PRECONDITION, "The request should be sent to partition leader",
         e.NotLeaderError),
        (Status.FAILED_PRECONDITION, "commit log was closed", e.PartitionPausedError),
        (Status.RESOURCE_EXHAUSTED, "End of readonly partition", e.ReadonlyPartitionError),
        (Status.RESOURCE_EXHAUSTED, "Stop offset reached", e.EndOfPartitionError),
        (Status.UNKNOWN, "incorrect expected offset", e.IncorrectOffsetError),
        (Status.INVALID_ARGUMENT, "message exceeds max replication size",
         e.MessageTooLargeError),
        (Status.INVALID_ARGUMENT, "Subject is invalid", e.InvalidArgumentError),
        (Status.DEADLINE_EXCEEDED, "timed out waiting for ack", e.DeadlineExceededError),
        (Status.INTERNAL, "no known metadata leader", e.NoMetadataLeaderError),
        (Status.UNAVAILABLE, "down", e.UnavailableError),
        (Status.UNIMPLEMENTED, "SetCursor is not implemented by lb yet", e.UnimplementedError),
        (Status.INTERNAL, "something else", e.LbError),
    ],
)
def test_status_mapping(status: Status, message: str, kind: type[e.LbError]) -> None:
    err = e.error_from_status(status, message)
    assert type(err) is kind
    assert (err.status, err.message) == (status, message)
    assert isinstance(e.error_from_exception(GRPCError(status, message)), kind)


def test_async_codes_and_transport_errors() -> None:
    ro = e.error_from_async_code(PublishAsyncErrorCode.READONLY, "readonly partition: 1")
    assert isinstance(ro, e.ReadonlyPartitionError) and ro.status is Status.FAILED_PRECONDITION
    occ = e.error_from_async_code(PublishAsyncErrorCode.INCORRECT_OFFSET, "x")
    assert isinstance(occ, e.IncorrectOffsetError)
    nf = e.error_from_async_code(PublishAsyncErrorCode.NOT_FOUND, "no such stream: s")
    assert isinstance(nf, e.NoSuchStreamError)
    assert isinstance(e.error_from_async_code(99, "?"), e.LbError)
    assert isinstance(e.error_from_exception(ConnectionRefusedError()), e.UnavailableError)
    assert isinstance(e.error_from_exception(StreamTerminatedError("x")), e.UnavailableError)
    assert isinstance(e.error_from_exception(TimeoutError()), e.DeadlineExceededError)
    assert e.error_from_exception(ValueError()) is None


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9292") == ("127.0.0.1", 9292)
    assert parse_address("host") == ("host", 9292)
    assert parse_address("[::1]:7") == ("::1", 7)
    assert BrokerInfo("a", "::1", 7).address == "[::1]:7"
    for bad in ("", ":80", "h:0", "h:x", "h:70000"):
        with pytest.raises(ValueError):
            parse_address(bad)


def _response(leader: str, partitions: int = 2) -> api.FetchMetadataResponse:
    return api.FetchMetadataResponse(
        brokers=[api.Broker(id="a", host="10.0.0.1", port=1), api.Broker(id="b", host="h", port=2)],
        stream_metadata=[
            api.StreamMetadata(
                name="s",
                subject="s.subj",
                partitions={
                    i: api.PartitionMetadata(id=i, leader=leader, replicas=["a", "b"],
                                             isr=["a", "b"])
                    for i in range(partitions)
                },
            ),
            api.StreamMetadata(name="gone", error=api.StreamMetadataError.UNKNOWN_STREAM),
        ],
    )


def test_metadata_cache() -> None:
    md = Metadata.from_proto(_response("b"), fetched_at=100.0)
    assert "gone" not in md.streams
    assert md.partition_count("s") == 2 and md.partition("s", 0).id == 0  # type: ignore[union-attr]
    assert md.leader_address("s", 1) == "h:2"
    assert sorted(md.isr_addresses("s", 0)) == ["10.0.0.1:1", "h:2"]
    assert md.leader_address("s", 5) is None and md.leader_address("x", 0) is None
    assert not md.is_stale(150.0, max_age_s=120) and md.is_stale(221.0, max_age_s=120)
    newer = Metadata.from_proto(_response("a", 3), fetched_at=200.0)
    merged = md.merged(Metadata((), newer.streams, 200.0), ["s"], [])
    assert merged.brokers == md.brokers  # an answer without brokers keeps the known ones
    assert merged.leader_address("s", 2) == "10.0.0.1:1" and merged.fetched_at == 200.0
    dropped = merged.merged(Metadata((), {}, 300.0), ["s"], ["s"])
    assert "s" not in dropped.streams


def test_partitioners() -> None:
    # CRC32-IEEE, as Liftbridge clients compute it: crc32("foo") = 0x8C736521.
    assert key_hash_partition(b"foo", 1 << 32) == 0x8C736521
    assert key_hash_partition(b"foo", 7) == 0x8C736521 % 7
    assert KeyHashPartitioner().partition("s", b"", b"v", 5) == 0
    rr = RoundRobinPartitioner()
    assert [rr.partition("s", b"", b"", 3) for _ in range(5)] == [0, 1, 2, 0, 1]
    assert rr.partition("t", b"", b"", 3) == 0  # a counter per stream
    with pytest.raises(ValueError):
        key_hash_partition(b"k", 0)


def test_format_table() -> None:
    out = format_table(("NAME", "N"), [("a", 1), ("bbb", 100)])
    assert out.splitlines() == ["NAME    N", "a       1", "bbb   100"]


def test_not_found_is_retried_only_for_streams_created_moments_ago() -> None:
    from lb.client.client import Client, _Route

    client = Client(["127.0.0.1:1"], created_grace_s=10.0)
    client._created["fresh"] = time.monotonic()
    client._created["old"] = time.monotonic() - 60
    missing = e.NoSuchStreamError(Status.NOT_FOUND, "no such stream: x")
    assert client._retryable(missing, _Route("leader", "fresh"))
    assert not client._retryable(missing, _Route("leader", "old"))
    assert not client._retryable(missing, _Route("leader", "other"))
    # Once the cache knows the stream, a partition it lacks is final (counts are fixed).
    known = Metadata.from_proto(_response("a"), time.monotonic())
    client._metadata = Metadata(known.brokers, {"fresh": known.streams["s"]}, 0.0)
    no_part = e.NoSuchPartitionError(Status.NOT_FOUND, "no such partition: 5")
    assert not client._retryable(no_part, _Route("leader", "fresh", 5))
    assert client._retryable(no_part, _Route("leader", "fresh", 1))
    deleted = e.StreamDeletedError(Status.NOT_FOUND, "commit log was deleted")
    assert not client._retryable(deleted, _Route("leader", "fresh"))
    for err in (
        e.UnavailableError(Status.UNAVAILABLE, "x"),
        e.NotLeaderError(Status.FAILED_PRECONDITION, "Server not partition leader"),
        e.NoMetadataLeaderError(Status.INTERNAL, "no known metadata leader"),
    ):
        assert client._retryable(err, _Route("any"))
    assert not client._retryable(e.StreamExistsError(Status.ALREADY_EXISTS, "x"), _Route("any"))
