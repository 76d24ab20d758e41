"""lb.client when servers go away or leaders are elsewhere:

* a subscription resumes from the next offset after its server restarts (UNAVAILABLE, then a
  new stream), with no gap and no duplicate;
* with two servers, calls reach each partition's leader through one seed, and a stale cache
  that names the wrong leader is corrected after "not leader" (FailedPrecondition).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from lb.client import Client, StartPosition
from lb.client.metadata import Metadata
from lb.testing.cluster import nats_cluster
from lb.testing.lb_process import new_lb_process

pytestmark = pytest.mark.anyio


async def test_subscription_resumes_after_server_restart(tmp_path: Path) -> None:
    server = new_lb_process(tmp_path, "lb").start()
    try:
        await asyncio.to_thread(server.wait_serving)
        address = f"127.0.0.1:{server.port}"
        async with Client([address], resubscribe_wait_s=30, backoff_max_s=0.5) as client:
            await client.create_stream("restart.subj", "restart")
            for i in range(3):
                ack = await (await client.publish_async("restart", b"before%d" % i))
                assert ack is not None and ack.offset == i
            sub = client.subscribe("restart", start=StartPosition.EARLIEST)
            got = [await asyncio.wait_for(sub.__anext__(), 10) for _ in range(3)]
            assert [m.offset for m in got] == [0, 1, 2]

            await asyncio.to_thread(server.stop)
            server = new_lb_process(tmp_path, "lb", port=server.port).start()
            await asyncio.to_thread(server.wait_serving)
            # The PublishAsync stream died with the server: the client opens a new one.
            for i in range(3):
                ack = await (await client.publish_async("restart", b"after%d" % i))
                assert ack is not None and ack.offset == 3 + i
            more = [await asyncio.wait_for(sub.__anext__(), 30) for _ in range(3)]
            assert [(m.offset, m.value) for m in more] == [
                (3, b"after0"), (4, b"after1"), (5, b"after2")
            ]
            assert sub.resubscribes >= 1
            await sub.aclose()
    finally:
        server.stop()


async def test_leader_routing_and_not_leader_retry(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        a = cluster.add("a", args=["--raft-bootstrap-seed"])
        await asyncio.to_thread(a.wait_serving)
        b = cluster.add("b")
        await asyncio.to_thread(b.wait_serving)
        await asyncio.to_thread(cluster.wait_leader)
        async with Client([f"127.0.0.1:{a.port}"]) as client:
            # Both servers must be registered before placement spreads the partitions.
            for _ in range(200):
                md = await client.fetch_metadata()
                if len(md.brokers) == 2:
                    break
                await asyncio.sleep(0.05)
            assert {br.id for br in md.brokers} == {"a", "b"}
            await client.create_stream("two.subj", "two", partitions=2)
            md = await client.fetch_metadata(["two"])
            leaders = {pid: p.leader for pid, p in md.streams["two"].partitions.items()}
            assert set(leaders.values()) == {"a", "b"}, leaders

            for pid in (0, 1):
                ack = await client.publish("two", b"p%d" % pid, partition=pid)
                assert ack is not None and ack.offset == 0
                # Leader-only RPCs succeed through the one seed: the client routes them.
                info = await client.fetch_partition_metadata("two", pid)
                assert info.newest_offset == 0

            # Poison the cache: swap the leaders. The next leader-only call hits the wrong
            # server, gets "not leader", refreshes and retries.
            stream = client.metadata.streams["two"]
            swapped = {
                pid: dataclasses.replace(p, leader=leaders[1 - pid])
                for pid, p in stream.partitions.items()
            }
            poisoned = Metadata(
                client.metadata.brokers,
                {"two": dataclasses.replace(stream, partitions=swapped)},
                client.metadata.fetched_at,
            )
            for pid in (0, 1):
                client._metadata = poisoned
                info = await client.fetch_partition_metadata("two", pid)
                assert info.leader == leaders[pid]
                assert client.metadata.streams["two"].partitions[pid].leader == leaders[pid]
                client._metadata = poisoned
                sub = client.subscribe("two", partition=pid, start=StartPosition.EARLIEST)
                async with sub:
                    msg = await asyncio.wait_for(sub.__anext__(), 10)
                assert msg.value == b"p%d" % pid
                assert client.metadata.streams["two"].partitions[pid].leader == leaders[pid]
