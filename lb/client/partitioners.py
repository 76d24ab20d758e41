"""Choosing the partition of a published message (PART-5).

The server only maps a partition number to its NATS subject; which partition a message goes to
is the client's decision. These are Liftbridge's three rules, so that messages published by lb's
client and by go-liftbridge with the same key land in the same partition.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Protocol

__all__ = ["KeyHashPartitioner", "Partitioner", "RoundRobinPartitioner", "key_hash_partition"]


class Partitioner(Protocol):
    """Picks a partition in ``range(partition_count)`` for one message."""

    def partition(self, stream: str, key: bytes, value: bytes, partition_count: int) -> int: ...


def key_hash_partition(key: bytes, partition_count: int) -> int:
    """Liftbridge's key hash: CRC32-IEEE of the key, modulo the partition count."""
    if partition_count <= 0:
        raise ValueError("partition_count must be positive")
    return zlib.crc32(key) % partition_count


class KeyHashPartitioner:
    """Messages with the same key go to the same partition. An empty key hashes like any
    other (CRC32 of b"" is 0, so partition 0), as go-liftbridge does."""

    def partition(self, stream: str, key: bytes, value: bytes, partition_count: int) -> int:
        return key_hash_partition(key, partition_count)


class RoundRobinPartitioner:
    """Spreads messages over partitions in turn, with one counter per stream."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def partition(self, stream: str, key: bytes, value: bytes, partition_count: int) -> int:
        if partition_count <= 0:
            raise ValueError("partition_count must be positive")
        counter = self._counters.get(stream)
        if counter is None:
            counter = self._counters[stream] = itertools.count()
        return next(counter) % partition_count
