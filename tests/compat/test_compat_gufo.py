"""gufo-liftbridge (a grpcio-based Liftbridge client on PyPI, pinned in the test extra)
against a running lb: create a stream, publish, publish in bulk over PublishAsync, subscribe,
fetch metadata, delete."""

from __future__ import annotations

import asyncio

import pytest

from lb.testing.lb_process import LbProcess

gufo = pytest.importorskip("gufo.liftbridge.client")
from gufo.liftbridge.client import LiftbridgeClient  # noqa: E402
from gufo.liftbridge.error import ErrorAlreadyExists, ErrorNotFound  # noqa: E402
from gufo.liftbridge.types import AckPolicy, StartPosition  # noqa: E402


async def take(iterable, n: int, timeout_s: float = 20.0) -> list:  # type: ignore[no-untyped-def]
    out = []

    async def collect() -> None:
        async for item in iterable:
            out.append(item)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), timeout_s)
    return out


def test_gufo_liftbridge_round_trip(lb_server: LbProcess) -> None:
    broker = f"127.0.0.1:{lb_server.port}"

    async def main() -> None:
        async with LiftbridgeClient(
            [broker], metadata_leader_timeout=0.1, metadata_leader_dev=0.05
        ) as client:
            await client.create_stream("gufo", subject="gufo.subj", partitions=2)
            with pytest.raises(ErrorAlreadyExists):
                await client.create_stream("gufo", subject="gufo.subj")

            # Unary publish: gufo sends no deadline, so lb publishes without waiting (PUB-3).
            for i in range(3):
                await client.publish(b"single%d" % i, stream="gufo", partition=0, key=b"k")

            requests = [
                client.get_publish_request(
                    b"bulk%d" % i,
                    stream="gufo",
                    partition=1,
                    correlation_id=f"c{i}",
                    ack_policy=AckPolicy.LEADER,
                    headers={"n": str(i).encode()},
                )
                for i in range(100)
            ]
            acks = [a async for a in client.publish_bulk(requests)]
            assert len(acks) == 100
            assert sorted(a.correlationId for a in acks) == sorted(f"c{i}" for i in range(100))
            assert sorted(a.ack.offset for a in acks) == list(range(100))

            md = await client.get_metadata()
            assert [b.port for b in md.brokers] == [lb_server.port]
            (stream,) = [s for s in md.metadata if s.name == "gufo"]
            assert stream.subject == "gufo.subj" and sorted(stream.partitions) == [0, 1]
            pmd = await client.get_partition_metadata("gufo", 1)
            assert (pmd.high_watermark, pmd.newest_offset) == (99, 99)

            msgs = await take(
                client.subscribe("gufo", partition=0, start_position=StartPosition.EARLIEST), 3
            )
            assert [(m.offset, m.value, m.key) for m in msgs] == [
                (i, b"single%d" % i, b"k") for i in range(3)
            ]
            tail = await take(client.subscribe("gufo", partition=1, start_offset=98), 2)
            assert [(m.offset, m.value, m.headers["n"]) for m in tail] == [
                (98, b"bulk98", b"98"), (99, b"bulk99", b"99")
            ]

            await client.delete_stream("gufo")
            md = await client.get_metadata()
            assert "gufo" not in {s.name for s in md.metadata}
            with pytest.raises(ErrorNotFound):
                await client.delete_stream("gufo")

    asyncio.run(asyncio.wait_for(main(), 60))
