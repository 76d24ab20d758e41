"""lb.client from Trio through trio-asyncio, as the lb.client docstring shows: one crossing per
batch of work (``aio_as_trio`` on an asyncio coroutine), and a subscription iterated from Trio."""

from __future__ import annotations

import asyncio

import trio
import trio_asyncio

from lb.client import Client, StartPosition, StopPosition


async def publish_batch(client: Client, stream: str, values: list[bytes]) -> int:
    """Plain asyncio: the whole batch is pipelined over one PublishAsync stream."""
    futures = [await client.publish_async(stream, v) for v in values]
    acks = await asyncio.gather(*futures)
    return acks[-1].offset


def test_client_from_trio(address: str) -> None:
    received: list[tuple[int, bytes]] = []

    async def main() -> int:
        async with trio_asyncio.open_loop():
            client = await trio_asyncio.aio_as_trio(Client.connect)([address])
            try:
                await trio_asyncio.aio_as_trio(client.create_stream)("trio.subj", "trio")
                values = [b"v%d" % i for i in range(100)]
                last = await trio_asyncio.aio_as_trio(publish_batch)(client, "trio", values)
                sub = client.subscribe(
                    "trio", start=StartPosition.EARLIEST, stop=StopPosition.STOP_LATEST
                )
                async for msg in trio_asyncio.aio_as_trio(sub):
                    received.append((msg.offset, msg.value))
                return last
            finally:
                await trio_asyncio.aio_as_trio(client.close)()

    async def bounded() -> int:
        with trio.fail_after(30):
            return await main()

    last = trio.run(bounded)
    assert last == 99
    assert received == [(i, b"v%d" % i) for i in range(100)]
