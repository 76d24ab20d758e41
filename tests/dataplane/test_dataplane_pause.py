"""PauseStream, SetStreamReadonly and resume-on-publish end to end (issue 5).

Spec ids: PAUSE-1..8, RO-1..6, PMETA-3, META-4.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from dataplane_kit import SERVER_ID, Sub, create, publish, read, unique, wait_for
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from lb._proto import proto as api

pytestmark = pytest.mark.anyio


async def _status(coro: object) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as err:
        await coro  # type: ignore[misc]
    return err.value.status, err.value.message or ""


async def _partitions(client: api.ApiStub, name: str) -> dict[int, api.PartitionMetadata]:
    md = await client.fetch_metadata(api.FetchMetadataRequest(streams=[name]))
    return dict(md.stream_metadata[0].partitions)


async def _paused(client: api.ApiStub, name: str) -> list[bool]:
    parts = await _partitions(client, name)
    return [parts[i].paused for i in sorted(parts)]


async def _broker(client: api.ApiStub) -> api.Broker:
    md = await client.fetch_metadata(api.FetchMetadataRequest())
    return next(b for b in md.brokers if b.id == SERVER_ID)


async def test_pause_errors(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name, partitions=2)
    P = api.PauseStreamRequest
    assert await _status(client.pause_stream(P(name="nope"))) == (
        Status.NOT_FOUND, "stream not found",
    )
    assert await _status(client.pause_stream(P(name="nope", partitions=[0]))) == (
        Status.NOT_FOUND, "stream does not exist",
    )
    assert await _status(client.pause_stream(P(name=name, partitions=[5]))) == (
        Status.NOT_FOUND, "partition does not exist",
    )
    R = api.SetStreamReadonlyRequest
    assert await _status(client.set_stream_readonly(R(name="nope", readonly=True))) == (
        Status.NOT_FOUND, "stream not found",
    )
    assert await _status(
        client.set_stream_readonly(R(name="nope", partitions=[0], readonly=True))
    ) == (Status.NOT_FOUND, "stream does not exist")
    assert await _status(
        client.set_stream_readonly(R(name=name, partitions=[-1], readonly=True))
    ) == (Status.NOT_FOUND, "partition does not exist")
    assert await _paused(client, name) == [False, False]


async def test_pause_all_then_publish_resumes_only_its_partition(
    client: api.ApiStub, nc: Any
) -> None:
    name = unique()
    await create(client, name, partitions=2)
    await publish(client, name, b"a")
    before = await _broker(client)
    await client.pause_stream(api.PauseStreamRequest(name=name))
    await client.pause_stream(api.PauseStreamRequest(name=name))  # idempotent (PAUSE-2)
    assert await _paused(client, name) == [True, True]
    after = await _broker(client)
    # Paused partitions are left out of the broker counts (META-4).
    assert before.partition_count - after.partition_count == 2
    assert before.leader_count - after.leader_count == 2
    # A paused partition answers no FetchPartitionMetadata (PAUSE-7).
    assert await _status(
        client.fetch_partition_metadata(api.FetchPartitionMetadataRequest(stream=name))
    ) == (Status.FAILED_PRECONDITION, "The request should be sent to partition leader")
    # Raw NATS messages to a paused partition are lost (PAUSE-3).
    await nc.publish(name, b"lost")
    await nc.flush()

    r = await publish(client, name, b"b")  # PAUSE-4: resumes partition 0 first
    assert r.ack.offset == 1  # data kept, offsets continue (PAUSE-8)
    assert await _paused(client, name) == [False, True]
    msgs, _ = await read(client, name)
    assert [m.value for m in msgs] == [b"a", b"b"]
    md = (
        await client.fetch_partition_metadata(api.FetchPartitionMetadataRequest(stream=name))
    ).metadata
    pause = md.pause_timestamps
    assert 0 < pause.first_timestamp < pause.latest_timestamp  # paused, then resumed


async def test_pause_some_with_resume_all(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name, partitions=3)
    await client.pause_stream(
        api.PauseStreamRequest(name=name, partitions=[0, 2], resume_all=True)
    )
    assert await _paused(client, name) == [True, False, True]
    # A publish to the unpaused partition 1 resumes every partition (resumeAll).
    await publish(client, name, b"x", partition=1)
    await wait_for(
        lambda: _all_false(client, name), what="every partition resumed"
    )


async def _all_false(client: api.ApiStub, name: str) -> bool:
    return not any(await _paused(client, name))


async def test_publish_async_resumes_a_paused_partition(client: api.ApiStub) -> None:
    from dataplane_kit import publish_async_stream

    name = unique()
    await create(client, name)
    await client.pause_stream(api.PauseStreamRequest(name=name))
    async with publish_async_stream(client) as st:
        await st.send_message(api.PublishRequest(stream=name, value=b"v", correlation_id="1"))
        resp = await st.recv_message()
        assert resp is not None and resp.ack.offset == 0 and not resp.async_error.message
        await st.end()
    assert await _paused(client, name) == [False]


async def test_readonly(client: api.ApiStub, nc: Any) -> None:
    name = unique()
    await create(client, name, partitions=2)
    await publish(client, name, b"a")
    t0 = time.time_ns()
    R = api.SetStreamReadonlyRequest
    await client.set_stream_readonly(R(name=name, partitions=[0], readonly=True))
    await client.set_stream_readonly(R(name=name, partitions=[0], readonly=True))  # idempotent
    parts = await _partitions(client, name)
    assert (parts[0].readonly, parts[1].readonly) == (True, False)
    assert await _status(publish(client, name, b"b")) == (
        Status.FAILED_PRECONDITION, "readonly partition: 0",
    )
    assert (await publish(client, name, b"p1", partition=1)).ack.offset == 0
    # Raw NATS messages to a readonly partition are dropped (RO-3).
    await nc.publish(name, b"dropped")
    await nc.flush()
    msgs, err = await read(client, name, stop=api.StopPosition.STOP_ON_CANCEL)
    assert [m.value for m in msgs] == [b"a"]
    assert err is not None and err.status == Status.RESOURCE_EXHAUSTED

    await client.set_stream_readonly(R(name=name, readonly=False))  # RO-6: writable again
    assert (await publish(client, name, b"c")).ack.offset == 1
    md = (
        await client.fetch_partition_metadata(api.FetchPartitionMetadataRequest(stream=name))
    ).metadata
    ro = md.readonly_timestamps
    assert t0 <= ro.first_timestamp < ro.latest_timestamp <= time.time_ns()


async def test_readonly_wakes_waiting_subscriber_after_its_data(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name)
    sub = Sub(client, name)
    await sub.ready()
    await publish(client, name, b"1")
    await sub.wait_count(1)
    await client.set_stream_readonly(api.SetStreamReadonlyRequest(name=name, readonly=True))
    err = await sub.ended()
    assert err is not None
    assert (err.status, err.message) == (Status.RESOURCE_EXHAUSTED, "End of readonly partition")


async def test_auto_pause_per_stream(client: api.ApiStub) -> None:
    """autoPauseTime: an idle partition pauses (a never-written one after one interval);
    a publish resumes it (PAUSE-9)."""
    name = unique()
    await create(client, name, partitions=2, auto_pause_time=api.NullableInt64(300))
    started = time.monotonic()
    await wait_for(lambda: _all_paused(client, name), what="auto-pause")
    assert time.monotonic() - started >= 0.25
    assert (await publish(client, name, b"v", partition=1)).ack.offset == 0
    assert await _paused(client, name) == [True, False]
    await wait_for(lambda: _all_paused(client, name), what="auto-pause again")


async def _all_paused(client: api.ApiStub, name: str) -> bool:
    return all(await _paused(client, name))


async def test_auto_pause_disabled_while_subscribed(client: api.ApiStub) -> None:
    name = unique()
    other = unique()
    await create(
        client, name, auto_pause_time=api.NullableInt64(200),
        auto_pause_disable_if_subscribers=api.NullableBool(True),
    )
    sub = Sub(client, name)
    await sub.ready()
    # A stream created later with the same interval but no subscriber pauses; ours, idle
    # for longer, must not.
    await create(client, other, auto_pause_time=api.NullableInt64(200))
    await wait_for(lambda: _all_paused(client, other), what="the other stream to pause")
    assert await _paused(client, name) == [False]
    sub.cancel()
    await wait_for(lambda: _all_paused(client, name), what="auto-pause once unsubscribed")
