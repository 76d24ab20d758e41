"""lb.client against one real lb server: stream admin, publish, publish_async, subscribe,
partitioners, typed errors, metadata cache and retries over dead seeds."""

from __future__ import annotations

import asyncio
import zlib

import pytest
from grpclib.const import Status

from lb.client import (
    Ack,
    AckPolicy,
    Client,
    IncorrectOffsetError,
    KeyHashPartitioner,
    LbError,
    Message,
    NoSuchPartitionError,
    NoSuchStreamError,
    ReadonlyPartitionError,
    RoundRobinPartitioner,
    StartPosition,
    StopPosition,
    StreamExistsError,
    UnavailableError,
)

pytestmark = pytest.mark.anyio


async def read_all(client: Client, stream: str, partition: int = 0) -> list[Message]:
    sub = client.subscribe(
        stream, partition=partition, start=StartPosition.EARLIEST, stop=StopPosition.STOP_LATEST
    )
    async with sub:
        return [m async for m in sub]


async def test_create_duplicate_and_delete(client: Client, name: str) -> None:
    await client.create_stream("subj." + name, name, partitions=2)
    with pytest.raises(StreamExistsError) as info:
        await client.create_stream("other", name)
    assert info.value.status is Status.ALREADY_EXISTS
    assert info.value.message == "stream already exists"
    md = await client.fetch_metadata([name])
    assert sorted(md.streams[name].partitions) == [0, 1]
    assert md.streams[name].subject == "subj." + name
    assert md.brokers and md.brokers[0].port > 0
    await client.delete_stream(name)
    assert name not in client.metadata.streams
    with pytest.raises(NoSuchStreamError) as info2:
        await client.delete_stream(name)
    assert info2.value.status is Status.NOT_FOUND


async def test_publish_waits_for_ack_and_subscribe_reads_it(client: Client, name: str) -> None:
    await client.create_stream("subj." + name, name)
    ack = await client.publish(name, b"v0", key=b"k0", headers={"h": b"1"})
    assert isinstance(ack, Ack)
    assert (ack.stream, ack.offset, ack.msg_subject) == (name, 0, "subj." + name)
    assert ack.correlation_id  # the client fills one in
    assert await client.publish(name, b"v1", ack_policy=AckPolicy.NONE) is None
    ack_all = await client.publish(name, b"v2", ack_policy=AckPolicy.ALL, correlation_id="c2")
    assert ack_all is not None and ack_all.correlation_id == "c2"
    # The NONE message has no ack, so wait until it is readable.
    for _ in range(100):
        msgs = await read_all(client, name)
        if len(msgs) == 3:
            break
        await asyncio.sleep(0.02)
    assert [m.value for m in msgs] == [b"v0", b"v1", b"v2"]
    assert [m.offset for m in msgs] == [0, 1, 2]
    assert msgs[0].key == b"k0" and msgs[0].headers["h"] == b"1"
    assert msgs[0].stream == name and msgs[0].subject == "subj." + name
    assert msgs[0].timestamp_ns == ack.reception_timestamp_ns


async def test_publish_errors_are_typed(client: Client, name: str) -> None:
    with pytest.raises(NoSuchStreamError) as info:
        await client.publish("no-such-" + name, b"x")
    assert info.value.message == f"no such stream: no-such-{name}"
    await client.create_stream("subj." + name, name)
    with pytest.raises(NoSuchPartitionError):
        await client.publish(name, b"x", partition=3)
    await client.set_stream_readonly(name)
    with pytest.raises(ReadonlyPartitionError) as ro:
        await client.publish(name, b"x")
    assert ro.value.status is Status.FAILED_PRECONDITION
    assert ro.value.message == "readonly partition: 0"
    fut = await client.publish_async(name, b"x")
    with pytest.raises(ReadonlyPartitionError):
        await fut
    await client.set_stream_readonly(name, readonly=False)
    assert (await client.publish(name, b"ok")) is not None


async def test_optimistic_concurrency(client: Client, name: str) -> None:
    await client.create_stream("subj." + name, name, optimistic_concurrency_control=True)
    ack = await client.publish(name, b"a", expected_offset=0)
    assert ack is not None and ack.offset == 0
    with pytest.raises(IncorrectOffsetError) as info:
        await client.publish(name, b"b", expected_offset=5)
    assert info.value.status is Status.UNKNOWN
    fut = await client.publish_async(name, b"b", expected_offset=7)
    with pytest.raises(IncorrectOffsetError):
        await fut
    ok = await client.publish_async(name, b"b", expected_offset=1)
    assert (await ok).offset == 1


async def test_publish_async_pipelines_with_futures_and_callbacks(
    client: Client, name: str
) -> None:
    await client.create_stream("subj." + name, name)
    futures = [await client.publish_async(name, b"m%d" % i) for i in range(500)]
    acks = await asyncio.gather(*futures)
    assert [a.offset for a in acks] == list(range(500))
    got: list[tuple[int | None, LbError | None]] = []
    done = asyncio.Event()

    def on_ack(ack: Ack | None, err: LbError | None) -> None:
        got.append((None if ack is None else ack.offset, err))
        if len(got) == 3:
            done.set()

    for i in range(3):
        await client.publish_async(name, b"cb%d" % i, callback=on_ack)
    await asyncio.wait_for(done.wait(), 10)
    assert got == [(500, None), (501, None), (502, None)]
    none = await client.publish_async(name, b"n", ack_policy=AckPolicy.NONE)
    assert none.done() and none.result() is None
    await client.flush()


async def test_partitioners(client: Client, name: str) -> None:
    await client.create_stream("subj." + name, name, partitions=3)
    keyed = KeyHashPartitioner()
    keys = [b"alpha", b"beta", b"gamma", b"delta", b"", b"\xff"]
    for key in keys:
        ack = await client.publish(name, key, key=key, partitioner=keyed)
        assert ack is not None
        pid = zlib.crc32(key) % 3
        assert ack.msg_subject == ("subj." + name if pid == 0 else f"subj.{name}.{pid}")
    rr = RoundRobinPartitioner()
    futures = [await client.publish_async(name, b"rr", partitioner=rr) for _ in range(6)]
    subjects = [a.msg_subject for a in await asyncio.gather(*futures)]
    assert subjects == [f"subj.{name}", f"subj.{name}.1", f"subj.{name}.2"] * 2
    for pid in range(3):
        msgs = await read_all(client, name, pid)
        assert {m.key for m in msgs if m.value != b"rr"} == {
            k for k in keys if zlib.crc32(k) % 3 == pid
        }
        assert all(m.partition == pid for m in msgs)


async def test_subscribe_positions_and_errors(client: Client, name: str) -> None:
    with pytest.raises(NoSuchStreamError):
        async with client.subscribe("no-such-" + name):
            pass
    await client.create_stream("subj." + name, name)
    for i in range(5):
        await client.publish(name, b"%d" % i)
    latest = client.subscribe(name, start=StartPosition.LATEST, stop=StopPosition.STOP_LATEST)
    assert [m.offset async for m in latest] == [4]
    from_two = client.subscribe(
        name, start=StartPosition.OFFSET, start_offset=2, stop=StopPosition.STOP_OFFSET,
        stop_offset=3,
    )
    assert [m.value async for m in from_two] == [b"2", b"3"]
    msgs = await read_all(client, name)
    stamp = msgs[3].timestamp_ns
    by_time = client.subscribe(
        name, start=StartPosition.TIMESTAMP, start_timestamp_ns=stamp,
        stop=StopPosition.STOP_LATEST,
    )
    offsets = [m.offset async for m in by_time]
    assert offsets[0] <= 3 and offsets[-1] == 4

    # NEW_ONLY waits for new messages; the iterator never yields the handshake.
    async with client.subscribe(name) as sub:
        await client.publish(name, b"new")
        first = await asyncio.wait_for(sub.__anext__(), 10)
        assert (first.offset, first.value) == (5, b"new")
        assert sub.next_offset == 6

    # Readonly: the subscription ends cleanly at the end of the partition (RO-4).
    await client.set_stream_readonly(name)
    tail = client.subscribe(name, start=StartPosition.OFFSET, start_offset=4)
    assert [m.offset async for m in tail] == [4, 5]


async def test_read_isr_replica_and_partition_metadata(client: Client, name: str) -> None:
    await client.create_stream("subj." + name, name)
    await client.publish(name, b"x")
    sub = client.subscribe(
        name, start=StartPosition.EARLIEST, stop=StopPosition.STOP_LATEST, read_isr_replica=True
    )
    assert [m.value async for m in sub] == [b"x"]
    info = await client.fetch_partition_metadata(name, 0)
    assert (info.id, info.high_watermark, info.newest_offset) == (0, 0, 0)
    assert info.leader in info.isr
    with pytest.raises(NoSuchPartitionError):
        await client.fetch_partition_metadata(name, 9)


async def test_pause_and_resume_by_publish(client: Client, name: str) -> None:
    await client.create_stream("subj." + name, name, partitions=2)
    await client.pause_stream(name, [1])
    md = await client.fetch_metadata([name])
    assert md.streams[name].partitions[1].paused
    assert not md.streams[name].partitions[0].paused
    ack = await client.publish(name, b"wakes it", partition=1)  # PAUSE-4
    assert ack is not None and ack.offset == 0
    md = await client.fetch_metadata([name])
    assert not md.streams[name].partitions[1].paused


async def test_dead_seeds_are_skipped_and_unreachable_cluster_fails(address: str) -> None:
    async with Client(["127.0.0.1:1", address], backoff_base_s=0.01) as c:
        assert c.metadata.brokers
    with pytest.raises(UnavailableError) as info:
        await Client.connect(["127.0.0.1:1"], retries_max=2, backoff_base_s=0.01)
    assert info.value.status is Status.UNAVAILABLE


async def test_metadata_cache_refreshes_when_stale_or_missing(address: str, name: str) -> None:
    async with Client([address], metadata_max_age_s=3600) as c:
        before = c.metadata.fetched_at
        # Another client creates a stream; this client learns it on first use.
        async with Client([address]) as other:
            await other.create_stream("subj." + name, name)
        ack = await c.publish(name, b"x")
        assert ack is not None
        assert name in c.metadata.streams and c.metadata.fetched_at > before
        # A fresh cache is not refetched...
        at = c.metadata.fetched_at
        await c.publish(name, b"y")
        assert c.metadata.fetched_at == at
    async with Client([address], metadata_max_age_s=0.0) as c:
        at = c.metadata.fetched_at
        await c.publish(name, b"z")
        assert c.metadata.fetched_at > at  # ...a stale one is
