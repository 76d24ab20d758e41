"""Restart and server-wide settings: after a restart on the same data dir, streams, messages,
offsets, pause and readonly state come back and new messages continue the offsets (issue 5;
CLU-8, PAUSE-8). Also the server-wide streams.auto.pause.time (PAUSE-9).

These tests start their own lb processes (against the module's nats-server).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from dataplane_kit import (
    SERVER_ID,
    Sub,
    create,
    fast_publish_async,
    fast_read,
    publish,
    read,
    restart,
    unique,
    wait_for,
    with_client,
)
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from lb._proto import proto as api
from lb.storage import batch as fmt
from lb.testing.lb_process import LbProcess, new_lb_process
from lb.testing.nats_server import NatsServer


@pytest.fixture
def server(tmp_path: Path, nats_server: NatsServer) -> Iterator[LbProcess]:
    proc = new_lb_process(tmp_path, config=_config(nats_server)).start()
    try:
        proc.wait_serving()
        yield proc
    finally:
        proc.stop()


def _config(nats_server: NatsServer, **extra: Any) -> dict[str, object]:
    return {
        "clustering.server.id": SERVER_ID,
        "clustering.raft.bootstrap.seed": True,
        "nats.servers": [nats_server.url],
        **extra,
    }


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_state_survivesrestart(server: LbProcess, sig: int) -> None:
    plain, paused, ro, big = unique(), unique(), unique(), unique()
    n_big = 5000

    async def before(c: api.ApiStub) -> None:
        await create(c, plain, partitions=2)
        await create(c, paused)
        await create(c, ro)
        await create(c, big, segment_max_bytes=api.NullableInt64(4096))
        for i in range(3):
            await publish(c, plain, b"p%d" % i)
        await publish(c, plain, b"q", partition=1)
        await publish(c, paused, b"x")
        await publish(c, ro, b"r")
        responses = await fast_publish_async(server.port, big, [b"%d" % i for i in range(n_big)])
        assert all(r.ack is not None for r in responses)
        await c.pause_stream(api.PauseStreamRequest(name=paused))
        await c.set_stream_readonly(api.SetStreamReadonlyRequest(name=ro, readonly=True))

    asyncio.run(with_client(server.port, before))
    server = restart(server, sig)

    async def after(c: api.ApiStub) -> None:
        names = [plain, paused, ro, big]

        # SERVING means the metadata is replayed: everything is there at once.
        md = await c.fetch_metadata(api.FetchMetadataRequest(streams=names))
        by_name = {s.name: s for s in md.stream_metadata}
        assert sorted(by_name[plain].partitions) == [0, 1]
        assert by_name[paused].partitions[0].paused
        assert by_name[ro].partitions[0].readonly
        msgs, _ = await read(c, plain)
        assert [(m.offset, m.value) for m in msgs] == [(0, b"p0"), (1, b"p1"), (2, b"p2")]
        assert (await publish(c, plain, b"p3")).ack.offset == 3  # offsets continue
        assert (await publish(c, plain, b"q2", partition=1)).ack.offset == 1
        # Readonly is still enforced.
        with pytest.raises(GRPCError) as err:
            await publish(c, ro, b"no")
        assert err.value.status == Status.FAILED_PRECONDITION
        # The paused partition resumes on publish, with its data.
        assert (await publish(c, paused, b"y")).ack.offset == 1
        msgs, _ = await read(c, paused)
        assert [m.value for m in msgs] == [b"x", b"y"]
        got = await fast_read(server.port, big, n_big)
        assert [m.value for m in got] == [b"%d" % i for i in range(n_big)]
        assert (await publish(c, big, b"next")).ack.offset == n_big

    try:
        asyncio.run(with_client(server.port, after))
    finally:
        server.stop()
    assert "Traceback" not in server.output()


def test_server_wide_auto_pause(tmp_path: Path, nats_server: NatsServer) -> None:
    """streams.auto.pause.time applies to streams without their own autoPauseTime; a stream's
    autoPauseTime 0 turns it off (SCFG-1: an explicit 0 overrides)."""
    config = _config(nats_server, **{"streams.auto.pause.time": "300ms"})
    proc = new_lb_process(tmp_path, config=config).start()
    try:
        proc.wait_serving()

        async def check(c: api.ApiStub) -> None:
            default, off = unique(), unique()
            await create(c, off, auto_pause_time=api.NullableInt64(0))
            await create(c, default)

            async def paused(name: str) -> bool:
                md = await c.fetch_metadata(api.FetchMetadataRequest(streams=[name]))
                return md.stream_metadata[0].partitions[0].paused

            await wait_for(lambda: paused(default), what="server-wide auto-pause")
            assert not await paused(off)

        asyncio.run(with_client(proc.port, check))
    finally:
        proc.stop()


def test_shutdown_ends_subscriptions_with_unavailable(server: LbProcess) -> None:
    """SUB-10: on shutdown an open subscription ends with Unavailable, so clients resubscribe
    elsewhere or later."""

    async def check(c: api.ApiStub) -> None:
        name = unique()
        await create(c, name)
        await publish(c, name, b"1")
        sub = Sub(c, name)
        await sub.wait_count(1)
        server.signal(signal.SIGTERM)
        err = await sub.ended()
        assert err is not None and err.status == Status.UNAVAILABLE, err

    asyncio.run(with_client(server.port, check))
    assert server.wait(timeout_s=10) == 0


@pytest.mark.parametrize(
    "policy",
    [
        {"streams.fsync.policy": "batch"},
        {"streams.fsync.policy": "interval", "streams.fsync.interval": "20ms"},
        {"streams.fsync.policy": "messages", "streams.fsync.messages": 3},
    ],
    ids=["batch", "interval", "messages"],
)
def test_fsync_policies(tmp_path: Path, nats_server: NatsServer, policy: dict[str, Any]) -> None:
    """Every fsync policy acks and serves (batch acks only what a sync covered)."""
    proc = new_lb_process(tmp_path, config=_config(nats_server, **policy)).start()
    try:
        proc.wait_serving()

        async def check(c: api.ApiStub) -> None:
            name = unique()
            await create(c, name)
            for i in range(5):
                assert (await publish(c, name, b"%d" % i)).ack.offset == i
            responses = await fast_publish_async(proc.port, name, [b"x"] * 500)
            assert sorted(r.ack.offset for r in responses if r.ack) == list(range(5, 505))
            msgs, _ = await read(c, name, count=5)
            assert [m.value for m in msgs] == [b"%d" % i for i in range(5)]

        asyncio.run(with_client(proc.port, check))
    finally:
        proc.stop()
    assert "Traceback" not in proc.output()


def _record_counts(partition_dir: Path) -> list[int]:
    """Records per stored batch (= per writer append), from the segment files."""
    counts = []
    for log_file in sorted(partition_dir.glob("*.log")):
        data = log_file.read_bytes()
        pos = 0
        while pos + fmt.HEADER_SIZE <= len(data):
            h = fmt.parse_header(data, pos)
            counts.append(h.record_count)
            pos += h.size
    return counts


def test_writer_batches_by_count_and_time(tmp_path: Path, nats_server: NatsServer) -> None:
    """batch.max.messages caps an append; batch.max.time waits to fill one (PART-6)."""
    config = _config(nats_server, **{"batch.max.messages": 7, "batch.max.time": "300ms"})
    proc = new_lb_process(tmp_path, config=config).start()
    try:
        proc.wait_serving()

        async def check(c: api.ApiStub) -> None:
            name = unique()
            await create(c, name)
            nc = await nats.connect(nats_server.url)
            try:
                for i in range(20):
                    await nc.publish(name, b"%d" % i)
                await nc.flush()
            finally:
                await nc.close()
            got = await fast_read(proc.port, name, 20)
            assert [m.value for m in got] == [b"%d" % i for i in range(20)]
            counts = _record_counts(proc.data_dir / "streams" / name / "0")
            assert sum(counts) == 20 and max(counts) == 7, counts
            assert len(counts) <= 4, counts  # waiting fills batches: not one per message

        asyncio.run(with_client(proc.port, check))
    finally:
        proc.stop()
