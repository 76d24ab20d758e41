"""lb's typed asyncio client for Liftbridge's gRPC API (works with lb and with Liftbridge).

Quick start (asyncio)::

    import asyncio
    from lb.client import Client, KeyHashPartitioner, StartPosition

    async def main() -> None:
        async with Client(["127.0.0.1:9292"]) as client:
            await client.create_stream("orders", "orders", partitions=3)
            ack = await client.publish("orders", b"hello", key=b"k1",
                                       partitioner=KeyHashPartitioner())
            futures = [await client.publish_async("orders", b"v%d" % i, partition=0)
                       for i in range(1000)]
            acks = await asyncio.gather(*futures)
            async with client.subscribe("orders", start=StartPosition.EARLIEST) as sub:
                async for msg in sub:
                    print(msg.offset, msg.value)

    asyncio.run(main())

From Trio, through trio-asyncio: the client runs on the asyncio loop that trio-asyncio
provides. Each crossing between Trio and asyncio costs 40-110 µs (design.md), so cross once per
batch of work, not once per message::

    import asyncio

    import trio
    import trio_asyncio
    from lb.client import Client, StartPosition, StopPosition

    async def publish_batch(client: Client, values: list[bytes]) -> int:
        # plain asyncio code: pipelines the whole batch over one PublishAsync stream
        futures = [await client.publish_async("events", v) for v in values]
        acks = await asyncio.gather(*futures)
        return acks[-1].offset

    async def main() -> None:
        async with trio_asyncio.open_loop():
            client = await trio_asyncio.aio_as_trio(Client.connect)(["127.0.0.1:9292"])
            try:
                last = await trio_asyncio.aio_as_trio(publish_batch)(client, [b"a", b"b"])
                # An asyncio async iterator can be iterated from Trio directly:
                sub = client.subscribe("events", start=StartPosition.EARLIEST,
                                       stop=StopPosition.STOP_LATEST)
                async for msg in trio_asyncio.aio_as_trio(sub):
                    print(msg.offset, msg.value)
            finally:
                await trio_asyncio.aio_as_trio(client.close)()

    trio.run(main)

Messages are :class:`lb.codec.MessageFields` and acks :class:`lb.codec.AckFields` (exported
here as ``Message`` and ``Ack``): plain slotted dataclasses decoded by lb's fast codec.
Errors are the typed exceptions of :mod:`lb.client.errors`, all subclasses of ``LbError``.
"""

from __future__ import annotations

from lb._proto.proto import StartPosition, StopPosition
from lb.client.client import AckCallback, Client
from lb.client.errors import (
    DeadlineExceededError,
    EndOfPartitionError,
    FailedPreconditionError,
    IncorrectOffsetError,
    InvalidArgumentError,
    LbError,
    MessageTooLargeError,
    NoMetadataLeaderError,
    NoSuchPartitionError,
    NoSuchStreamError,
    NotFoundError,
    NotLeaderError,
    PartitionPausedError,
    ReadonlyPartitionError,
    StreamDeletedError,
    StreamExistsError,
    UnavailableError,
    UnimplementedError,
)
from lb.client.metadata import BrokerInfo, EventTimestamps, Metadata, PartitionInfo, StreamInfo
from lb.client.partitioners import (
    KeyHashPartitioner,
    Partitioner,
    RoundRobinPartitioner,
    key_hash_partition,
)
from lb.client.subscription import Subscription
from lb.codec import AckFields as Ack
from lb.codec import AckPolicy
from lb.codec import MessageFields as Message

__all__ = [
    "Ack",
    "AckCallback",
    "AckPolicy",
    "BrokerInfo",
    "Client",
    "DeadlineExceededError",
    "EndOfPartitionError",
    "EventTimestamps",
    "FailedPreconditionError",
    "IncorrectOffsetError",
    "InvalidArgumentError",
    "KeyHashPartitioner",
    "LbError",
    "Message",
    "MessageTooLargeError",
    "Metadata",
    "NoMetadataLeaderError",
    "NoSuchPartitionError",
    "NoSuchStreamError",
    "NotFoundError",
    "NotLeaderError",
    "PartitionInfo",
    "PartitionPausedError",
    "Partitioner",
    "ReadonlyPartitionError",
    "RoundRobinPartitioner",
    "StartPosition",
    "StopPosition",
    "StreamDeletedError",
    "StreamExistsError",
    "StreamInfo",
    "Subscription",
    "UnavailableError",
    "UnimplementedError",
    "key_hash_partition",
]
