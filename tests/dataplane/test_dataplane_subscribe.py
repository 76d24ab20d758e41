"""Subscribe end to end: handshake, start and stop positions, committed-only delivery and the
ways a subscription ends (issue 5; spec SUB-*, RO-4/5, PAUSE-5/6)."""

from __future__ import annotations

from typing import Any

import pytest
from dataplane_kit import Sub, create, publish, read, unique
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from lb._proto import proto as api

pytestmark = pytest.mark.anyio

START = api.StartPosition
STOP = api.StopPosition


async def _stream_with(client: api.ApiStub, n: int) -> tuple[str, list[int]]:
    """A new stream holding values b"0".."n-1"; returns its name and the timestamps."""
    name = unique()
    await create(client, name)
    stamps = []
    for i in range(n):
        stamps.append((await publish(client, name, b"%d" % i)).ack.reception_timestamp)
    return name, stamps


def _offsets(msgs: list[api.Message]) -> list[int]:
    return [m.offset for m in msgs]


def _status(err: GRPCError | None) -> tuple[Status, str] | None:
    return None if err is None else (err.status, err.message or "")


async def test_unknown_stream_or_partition(client: api.ApiStub) -> None:
    name, _ = await _stream_with(client, 1)
    for stream, partition in [("nope", 0), (name, 1), (name, -1)]:
        msgs, err = await read(client, stream, partition=partition)
        assert msgs == []
        assert _status(err) == (Status.NOT_FOUND, "No such partition")


async def test_start_positions(client: api.ApiStub) -> None:
    name, stamps = await _stream_with(client, 5)
    cases = [
        (dict(start=START.EARLIEST), [0, 1, 2, 3, 4]),
        (dict(start=START.LATEST), [4]),
        (dict(start=START.OFFSET, start_offset=2), [2, 3, 4]),
        (dict(start=START.OFFSET, start_offset=-3), [0, 1, 2, 3, 4]),  # negative: 0 (SUB-6)
        (dict(start=START.TIMESTAMP, start_timestamp=stamps[3]), [3, 4]),
        (dict(start=START.TIMESTAMP, start_timestamp=stamps[2] + 1), [3, 4]),
        (dict(start=START.TIMESTAMP, start_timestamp=stamps[0] - 10**9), [0, 1, 2, 3, 4]),
    ]
    for kw, expected in cases:
        msgs, err = await read(client, name, stop=STOP.STOP_OFFSET, stop_offset=4, **kw)  # type: ignore[arg-type]
        assert _offsets(msgs) == expected, kw
        assert _status(err) == (Status.RESOURCE_EXHAUSTED, "Stop offset reached"), kw
    assert [m.value for m in (await read(client, name))[0]] == [b"%d" % i for i in range(5)]


@pytest.mark.parametrize(
    "kw",
    [
        dict(start_position=START.NEW_ONLY),
        dict(start_position=START.OFFSET, start_offset=100),  # SUB-6: past the end
        dict(start_position=START.TIMESTAMP, start_timestamp=2**62),  # SUB-7: after the last
    ],
)
async def test_positions_past_the_end_wait_for_the_next_message(
    client: api.ApiStub, kw: dict[str, object]
) -> None:
    name, _ = await _stream_with(client, 5)
    sub = Sub(client, name, **kw)  # type: ignore[arg-type]
    await sub.ready()
    await publish(client, name, b"new")
    (m,) = await sub.wait_count(1)
    assert (m.offset, m.value) == (5, b"new")
    sub.cancel()


async def test_every_start_position_on_an_empty_log_starts_at_zero(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name)
    subs = [
        Sub(client, name, start_position=pos, start_offset=5, start_timestamp=1)
        for pos in (START.NEW_ONLY, START.EARLIEST, START.LATEST, START.OFFSET, START.TIMESTAMP)
    ]
    for sub in subs:
        await sub.ready()
    await publish(client, name, b"first")
    for sub in subs:
        assert _offsets(await sub.wait_count(1)) == [0]
        sub.cancel()


async def test_stop_positions(client: api.ApiStub) -> None:
    name, stamps = await _stream_with(client, 8)
    msgs, err = await read(client, name, stop=STOP.STOP_OFFSET, stop_offset=3)
    assert _offsets(msgs) == [0, 1, 2, 3]
    assert _status(err) == (Status.RESOURCE_EXHAUSTED, "Stop offset reached")
    msgs, err = await read(client, name, stop=STOP.STOP_LATEST)
    assert _offsets(msgs) == list(range(8))
    assert _status(err) == (Status.RESOURCE_EXHAUSTED, "Stop offset reached")
    # STOP_TIMESTAMP is inclusive at both ends (SUB-8).
    msgs, err = await read(
        client, name, start=START.TIMESTAMP, start_timestamp=stamps[2],
        stop=STOP.STOP_TIMESTAMP, stop_timestamp=stamps[6],
    )
    assert _offsets(msgs) == [2, 3, 4, 5, 6]
    assert _status(err) == (Status.RESOURCE_EXHAUSTED, "Stop offset reached")
    # A stop offset in the future: delivered once it is written.
    sub = Sub(client, name, start_position=START.OFFSET, start_offset=7,
              stop_position=STOP.STOP_OFFSET, stop_offset=9)
    await sub.ready()
    await publish(client, name, b"8")
    await publish(client, name, b"9")
    await publish(client, name, b"10")
    assert _status(await sub.ended()) == (Status.RESOURCE_EXHAUSTED, "Stop offset reached")
    assert _offsets(sub.messages) == [7, 8, 9]
    # STOP_OFFSET -1 behaves like STOP_ON_CANCEL (SUB-9 quirk kept).
    sub = Sub(client, name, start_position=START.LATEST, stop_position=STOP.STOP_OFFSET,
              stop_offset=-1)
    await sub.ready()
    await publish(client, name, b"11")
    assert _offsets(await sub.wait_count(2)) == [10, 11]
    assert not sub.done
    sub.cancel()


async def test_stop_position_setup_errors(client: api.ApiStub) -> None:
    empty = unique()
    await create(client, empty)
    _, err = await read(client, empty, stop=STOP.STOP_LATEST)
    assert _status(err) == (Status.RESOURCE_EXHAUSTED, "Stream is empty")

    name, stamps = await _stream_with(client, 4)
    _, err = await read(
        client, name, stop=STOP.STOP_TIMESTAMP, stop_timestamp=stamps[0] - 1
    )
    assert err is not None and err.status == Status.INTERNAL
    assert (err.message or "").startswith("Failed to lookup offset for timestamp: ")
    _, err = await read(
        client, name, start=START.OFFSET, start_offset=3, stop=STOP.STOP_OFFSET, stop_offset=1
    )
    assert _status(err) == (
        Status.INVALID_ARGUMENT,
        "Stop offset is before start offset: 1 < 3",
    )
    req = api.SubscribeRequest(stream=name, start_position=START.EARLIEST)
    req.start_position = 42  # type: ignore[assignment]
    _, err = await _read_raw(client, req)
    assert _status(err) == (Status.INVALID_ARGUMENT, "Unknown StartPosition 42")
    req = api.SubscribeRequest(stream=name, start_position=START.EARLIEST)
    req.stop_position = 42  # type: ignore[assignment]
    _, err = await _read_raw(client, req)
    assert _status(err) == (Status.INVALID_ARGUMENT, "Unknown StopPosition 42")


async def _read_raw(
    client: api.ApiStub, req: api.SubscribeRequest
) -> tuple[list[api.Message], GRPCError | None]:
    out: list[api.Message] = []
    try:
        async for m in client.subscribe(req, timeout=5):
            out.append(m)
    except GRPCError as err:
        return out, err
    return out, None


async def test_only_committed_messages_are_delivered(client: api.ApiStub) -> None:
    """With minIsr 2 on one server nothing commits: LEADER acks arrive, subscribers see
    nothing (SUB-4, REPL-5)."""
    name = unique()
    await create(client, name, min_isr=api.NullableInt32(2))
    ack = (await publish(client, name, b"v", ack_policy=api.AckPolicy.LEADER)).ack
    assert ack.offset == 0
    md = await client.fetch_partition_metadata(
        api.FetchPartitionMetadataRequest(stream=name, partition=0)
    )
    assert (md.metadata.high_watermark, md.metadata.newest_offset) == (-1, 0)
    msgs, err = await read(client, name, stop=STOP.STOP_ON_CANCEL, timeout=0.5)
    assert msgs == [] and err is None


async def test_in_order_across_many_batches(client: api.ApiStub, nc: Any) -> None:
    """A live subscriber gets every message in order while the writer batches them."""
    name = unique()
    await create(client, name)
    sub = Sub(client, name)
    await sub.ready()
    n = 2000
    for i in range(n):
        await nc.publish(name, b"%d" % i)
    msgs = await sub.wait_count(n)
    assert _offsets(msgs) == list(range(n))
    assert [m.value for m in msgs] == [b"%d" % i for i in range(n)]
    sub.cancel()


async def test_subscription_ends_when_paused(client: api.ApiStub) -> None:
    name, _ = await _stream_with(client, 2)
    sub = Sub(client, name, stop_position=STOP.STOP_ON_CANCEL)
    await sub.wait_count(2)
    await client.pause_stream(api.PauseStreamRequest(name=name))
    assert _status(await sub.ended()) == (Status.FAILED_PRECONDITION, "commit log was closed")
    # A new subscription to the paused partition: handshake, then FailedPrecondition (PAUSE-5).
    msgs, err = await read(client, name)
    assert msgs == [] and _status(err) == (Status.FAILED_PRECONDITION, "commit log was closed")
    # resume=true resumes it first (SUB-12).
    msgs, err = await read(client, name, resume=True)
    assert _offsets(msgs) == [0, 1]
    md = await client.fetch_metadata(api.FetchMetadataRequest(streams=[name]))
    assert not md.stream_metadata[0].partitions[0].paused


async def test_subscription_ends_at_end_of_readonly_partition(client: api.ApiStub) -> None:
    name, _ = await _stream_with(client, 3)
    sub = Sub(client, name, stop_position=STOP.STOP_ON_CANCEL)
    await sub.wait_count(3)
    await client.set_stream_readonly(api.SetStreamReadonlyRequest(name=name, readonly=True))
    assert _status(await sub.ended()) == (Status.RESOURCE_EXHAUSTED, "End of readonly partition")
    assert _offsets(sub.messages) == [0, 1, 2]
    # New subscriptions on a readonly partition stop at the newest offset (RO-5).
    msgs, err = await read(client, name, stop=STOP.STOP_ON_CANCEL)
    assert _offsets(msgs) == [0, 1, 2]
    assert _status(err) == (Status.RESOURCE_EXHAUSTED, "Stop offset reached")
    msgs, err = await read(client, name, start=START.NEW_ONLY, stop=STOP.STOP_ON_CANCEL)
    assert _status(err) == (Status.INVALID_ARGUMENT, "Stop offset is before start offset: 2 < 3")


async def test_cancelled_subscription_leaves_the_server_serving(client: api.ApiStub) -> None:
    name, _ = await _stream_with(client, 1)
    subs = [Sub(client, name, stop_position=STOP.STOP_ON_CANCEL) for _ in range(5)]
    for sub in subs:
        await sub.wait_count(1)
        sub.cancel()
    await publish(client, name, b"after")
    msgs, _ = await read(client, name)
    assert _offsets(msgs) == [0, 1]
