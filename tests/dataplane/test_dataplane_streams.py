"""CreateStream, DeleteStream, FetchMetadata and FetchPartitionMetadata end to end (issue 5).

Spec ids: API-CREATE-*, API-DELETE-*, META-*, PMETA-*, SCFG-*.
"""

from __future__ import annotations

import time

import pytest
from dataplane_kit import SERVER_ID, Sub, create, publish, read, unique, wait_for
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from lb._proto import proto as api
from lb.testing.lb_process import LbProcess

pytestmark = pytest.mark.anyio


async def _error(coro: object) -> GRPCError:
    with pytest.raises(GRPCError) as err:
        await coro  # type: ignore[misc]
    return err.value


async def _create_error(client: api.ApiStub, **kw: object) -> tuple[Status, str]:
    err = await _error(client.create_stream(api.CreateStreamRequest(**kw)))  # type: ignore[arg-type]
    return err.status, err.message or ""


async def test_create_defaults_and_metadata(client: api.ApiStub) -> None:
    name = unique()
    before = time.time_ns()
    await create(client, name, subject=f"{name}.sub", partitions=0, replication_factor=0)
    md = await client.fetch_metadata(api.FetchMetadataRequest(streams=[name]))
    assert [b.id for b in md.brokers] == [SERVER_ID]
    (sm,) = md.stream_metadata
    assert sm.name == name and sm.subject == f"{name}.sub"
    assert before <= sm.creation_timestamp <= time.time_ns()
    assert list(sm.partitions) == [0]  # partitions 0 -> 1 (API-CREATE-1)
    p = sm.partitions[0]
    assert (p.leader, p.replicas, p.isr) == (SERVER_ID, [SERVER_ID], [SERVER_ID])
    assert (p.high_watermark, p.newest_offset, p.paused, p.readonly) == (-1, -1, False, False)
    assert p.messages_received_timestamps.first_timestamp == 0  # META-7


async def test_create_duplicate_reserved_and_invalid(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name)
    assert await _create_error(client, subject="other", name=name) == (
        Status.ALREADY_EXISTS,
        "stream already exists",
    )
    assert await _create_error(client, subject="x") == (
        Status.INVALID_ARGUMENT,
        "Name cannot be empty",
    )
    for subject in ["", "a b", "a\tb", "a.", ".a", "a..b", "a\nb"]:
        assert await _create_error(client, subject=subject, name=unique()) == (
            Status.INVALID_ARGUMENT,
            "Subject is invalid",
        ), subject
    for reserved in ["__activity", "__cursors"]:
        assert await _create_error(client, subject="r", name=reserved) == (
            Status.INVALID_ARGUMENT,
            "Stream is reserved",
        )
    # Name checked before subject (API-CREATE-12).
    assert (await _create_error(client, subject="", name=""))[1] == "Name cannot be empty"
    # Wildcards are accepted.
    await create(client, unique(), subject=f"{unique()}.*")
    await create(client, unique(), subject=f"{unique()}.>")


@pytest.mark.parametrize("partitions", [-1, -100])
async def test_create_negative_partitions_is_invalid_argument(
    client: api.ApiStub, partitions: int
) -> None:
    status, text = await _create_error(
        client, subject=unique(), name=unique(), partitions=partitions
    )
    assert status == Status.INVALID_ARGUMENT
    assert f"Invalid partitions {partitions}" in text


@pytest.mark.parametrize("bad", ["a/b", "..", "a.b", "a b", "a*", "a>", "x" * 250, "é"])
async def test_create_unsafe_stream_name_is_invalid_argument(
    client: api.ApiStub, bad: str
) -> None:
    status, text = await _create_error(client, subject=unique(), name=bad)
    assert status == Status.INVALID_ARGUMENT
    assert "is invalid" in text


async def test_replication_factor_checked_against_cluster_size(client: api.ApiStub) -> None:
    assert await _create_error(client, subject="x", name=unique(), replication_factor=2) == (
        Status.INVALID_ARGUMENT,
        "Invalid replicationFactor 2, cluster size 1",
    )
    assert await _create_error(client, subject="x", name=unique(), replication_factor=-2) == (
        Status.INVALID_ARGUMENT,
        "Invalid replicationFactor -2",
    )
    name = unique()
    await create(client, name, replication_factor=-1)  # -1: every member
    md = await client.fetch_metadata(api.FetchMetadataRequest(streams=[name]))
    assert md.stream_metadata[0].partitions[0].replicas == [SERVER_ID]


async def test_encryption_is_a_failed_precondition(client: api.ApiStub) -> None:
    status, text = await _create_error(
        client, subject="x", name=unique(), encryption=api.NullableBool(True)
    )
    assert status == Status.FAILED_PRECONDITION
    assert text.startswith("Failed on preconditions for stream's encryption handler: ")


async def test_create_with_every_config_field(client: api.ApiStub, lb_server: LbProcess) -> None:
    """Every optional field is accepted; the observable ones take effect (SCFG-1..7)."""
    name = unique()
    await create(
        client,
        name,
        partitions=2,
        retention_max_bytes=api.NullableInt64(0),
        retention_max_messages=api.NullableInt64(3),
        retention_max_age=api.NullableInt64(3_600_000),
        cleaner_interval=api.NullableInt64(1000),
        segment_max_bytes=api.NullableInt64(200),
        segment_max_age=api.NullableInt64(3_600_000),
        compact_max_goroutines=api.NullableInt32(2),
        compact_enabled=api.NullableBool(False),
        auto_pause_time=api.NullableInt64(0),
        auto_pause_disable_if_subscribers=api.NullableBool(False),
        min_isr=api.NullableInt32(1),
        optimistic_concurrency_control=api.NullableBool(False),
        encryption=api.NullableBool(False),
    )
    for i in range(10):
        await publish(client, name, b"x" * 100 + b"%d" % i)
    seg_dir = lb_server.data_dir / "streams" / name / "0"
    assert len(list(seg_dir.glob("*.log"))) >= 3, "segment.max.bytes 200 rolls segments"

    async def oldest() -> int:
        msgs, _ = await read(client, name, count=1)
        return msgs[0].offset if msgs else -1

    # Retention to 3 messages runs on the 1 s cleaner: whole segments before the active one go.
    await wait_for(lambda: _gt(oldest(), 5), timeout_s=10, what="retention")
    msgs, err = await read(client, name)
    assert msgs[-1].offset == 9 and err is not None


async def _gt(value: object, low: int) -> bool:
    return await value > low  # type: ignore[misc, no-any-return, operator]


async def test_delete_stream(client: api.ApiStub, lb_server: LbProcess) -> None:
    name = unique()
    await create(client, name, partitions=2)
    await publish(client, name, b"a")
    await publish(client, name, b"b", partition=1)
    stream_dir = lb_server.data_dir / "streams" / name
    assert (stream_dir / "0").is_dir() and (stream_dir / "1").is_dir()

    # An open subscription ends with NotFound "commit log was deleted" (API-DELETE-3).
    sub = Sub(client, name)
    await sub.wait_count(1)
    await client.delete_stream(api.DeleteStreamRequest(name=name))
    err = await sub.ended()
    assert [m.value for m in sub.messages] == [b"a"]
    assert err is not None and (err.status, err.message) == (
        Status.NOT_FOUND,
        "commit log was deleted",
    )
    assert not stream_dir.exists()
    md = await client.fetch_metadata(api.FetchMetadataRequest(streams=[name]))
    assert md.stream_metadata[0].error == api.StreamMetadataError.UNKNOWN_STREAM
    assert name not in {
        s.name for s in (await client.fetch_metadata(api.FetchMetadataRequest())).stream_metadata
    }

    err = await _error(client.delete_stream(api.DeleteStreamRequest(name=name)))
    assert (err.status, err.message) == (Status.NOT_FOUND, "stream does not exist")
    err = await _error(client.delete_stream(api.DeleteStreamRequest(name="__cursors")))
    assert (err.status, err.message) == (Status.INVALID_ARGUMENT, "Stream is reserved")

    # The name can be created again at once; offsets restart at 0 (API-DELETE-4).
    await create(client, name)
    r = await publish(client, name, b"again")
    assert r.ack.offset == 0
    msgs, _ = await read(client, name)
    assert [m.value for m in msgs] == [b"again"]


async def test_fetch_metadata_order_unknown_and_brokers(
    client: api.ApiStub, lb_server: LbProcess
) -> None:
    a, b = unique(), unique()
    await create(client, a, partitions=3)
    await create(client, b)
    md = await client.fetch_metadata(api.FetchMetadataRequest(streams=[b, "nope", a]))
    assert [s.name for s in md.stream_metadata] == [b, "nope", a]
    assert md.stream_metadata[1].error == api.StreamMetadataError.UNKNOWN_STREAM
    assert sorted(md.stream_metadata[2].partitions) == [0, 1, 2]
    (broker,) = md.brokers
    assert broker.id == SERVER_ID
    assert broker.port == lb_server.port
    assert broker.host
    assert broker.partition_count >= 4 and broker.leader_count >= 4
    # All streams in name order when none are named (META-1).
    md = await client.fetch_metadata(api.FetchMetadataRequest())
    names = [s.name for s in md.stream_metadata]
    assert names == sorted(names) and a in names and b in names


async def test_fetch_partition_metadata(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name, partitions=2)
    req = api.FetchPartitionMetadataRequest(stream=name, partition=1)
    md = (await client.fetch_partition_metadata(req)).metadata
    assert (md.id, md.high_watermark, md.newest_offset) == (1, -1, -1)
    assert md.messages_received_timestamps.first_timestamp == 0
    before = time.time_ns()
    await publish(client, name, b"1", partition=1)
    await publish(client, name, b"2", partition=1)
    md = (await client.fetch_partition_metadata(req)).metadata
    assert (md.high_watermark, md.newest_offset) == (1, 1)
    ts = md.messages_received_timestamps
    assert before <= ts.first_timestamp <= ts.latest_timestamp <= time.time_ns()
    assert (md.leader, md.replicas, md.isr) == (SERVER_ID, [SERVER_ID], [SERVER_ID])

    for stream, partition in [(name, 2), ("nope", 0), (name, -1)]:
        err = await _error(
            client.fetch_partition_metadata(
                api.FetchPartitionMetadataRequest(stream=stream, partition=partition)
            )
        )
        assert (err.status, err.message) == (Status.NOT_FOUND, "partition not found")
