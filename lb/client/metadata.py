"""The client's view of the cluster: brokers, streams, partitions, leaders.

Why a cache: every publish and subscribe must go to the partition leader (SUB-1), and asking
FetchMetadata before each call would double the cost of every call. The client keeps the last
answer and refreshes it when a server says it is not the leader, when a server is unreachable,
and when the answer is older than ``metadata.cache.max.age`` (2 minutes by default, as the
server's own broker cache). The objects here are plain frozen values, built once per
FetchMetadata answer from the generated betterproto classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from lb._proto import proto as api

__all__ = [
    "BrokerInfo",
    "EventTimestamps",
    "Metadata",
    "PartitionInfo",
    "StreamInfo",
    "parse_address",
]

METADATA_CACHE_MAX_AGE_S = 120.0


def parse_address(address: str, default_port: int = 9292) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:9292``); a bare host gets ``default_port``."""
    address = address.strip()
    if not address:
        raise ValueError("empty server address")
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host:
        raise ValueError(f"no host in server address {address!r}")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in server address {address!r}")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """One server as FetchMetadata lists it (META-4)."""

    id: str
    host: str
    port: int
    partition_count: int = 0
    leader_count: int = 0

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class EventTimestamps:
    """First and latest time (ns) of a partition event; 0 until the first one (META-7)."""

    first_ns: int = 0
    latest_ns: int = 0


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition (META-2). ``high_watermark``/``newest_offset`` are -1 when empty, and
    come from the answering server's copy (META-6)."""

    stream: str
    id: int
    leader: str
    replicas: tuple[str, ...]
    isr: tuple[str, ...]
    high_watermark: int = -1
    newest_offset: int = -1
    paused: bool = False
    readonly: bool = False
    messages_received: EventTimestamps = EventTimestamps()
    pause_times: EventTimestamps = EventTimestamps()
    readonly_times: EventTimestamps = EventTimestamps()

    @classmethod
    def from_proto(cls, stream: str, p: api.PartitionMetadata) -> PartitionInfo:
        def ts(t: api.PartitionEventTimestamps) -> EventTimestamps:
            return EventTimestamps(t.first_timestamp, t.latest_timestamp)

        return cls(
            stream=stream,
            id=p.id,
            leader=p.leader,
            replicas=tuple(p.replicas),
            isr=tuple(p.isr),
            high_watermark=p.high_watermark,
            newest_offset=p.newest_offset,
            paused=p.paused,
            readonly=p.readonly,
            messages_received=ts(p.messages_received_timestamps),
            pause_times=ts(p.pause_timestamps),
            readonly_times=ts(p.readonly_timestamps),
        )


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream and its partitions, by partition id."""

    name: str
    subject: str
    creation_timestamp_ns: int
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, s: api.StreamMetadata) -> StreamInfo:
        parts = {
            int(pid): PartitionInfo.from_proto(s.name, p) for pid, p in sorted(s.partitions.items())
        }
        # betterproto leaves PartitionMetadata.id at 0 when it was not sent; the map key wins.
        parts = {pid: p if p.id == pid else replace(p, id=pid) for pid, p in parts.items()}
        return cls(s.name, s.subject, s.creation_timestamp, parts)


@dataclass(frozen=True, slots=True)
class Metadata:
    """A snapshot of the cluster as one FetchMetadata answer (merged with older answers for
    streams it did not ask about). ``fetched_at`` is the client's monotonic clock, in s."""

    brokers: tuple[BrokerInfo, ...] = ()
    streams: dict[str, StreamInfo] = field(default_factory=dict)
    fetched_at: float = float("-inf")

    @classmethod
    def from_proto(cls, resp: api.FetchMetadataResponse, fetched_at: float) -> Metadata:
        brokers = tuple(
            BrokerInfo(b.id, b.host, b.port, b.partition_count, b.leader_count)
            for b in resp.brokers
        )
        streams = {
            s.name: StreamInfo.from_proto(s)
            for s in resp.stream_metadata
            if s.error == api.StreamMetadataError.OK
        }
        return cls(brokers, streams, fetched_at)

    def merged(self, newer: Metadata, asked: Sequence[str], unknown: Iterable[str]) -> Metadata:
        """This cache updated by ``newer``, an answer for the streams ``asked`` (all when
        empty). Streams reported unknown are dropped. An answer without brokers keeps the
        known ones: lb may leave the list empty while servers register."""
        brokers = newer.brokers or self.brokers
        if not asked:
            return Metadata(brokers, dict(newer.streams), newer.fetched_at)
        streams = dict(self.streams)
        for name in unknown:
            streams.pop(name, None)
        streams.update(newer.streams)
        return Metadata(brokers, streams, newer.fetched_at)

    def is_stale(self, now: float, max_age_s: float = METADATA_CACHE_MAX_AGE_S) -> bool:
        return now - self.fetched_at > max_age_s

    def broker(self, server_id: str) -> BrokerInfo | None:
        for b in self.brokers:
            if b.id == server_id:
                return b
        return None

    def partition(self, stream: str, partition: int) -> PartitionInfo | None:
        s = self.streams.get(stream)
        return None if s is None else s.partitions.get(partition)

    def partition_count(self, stream: str) -> int | None:
        s = self.streams.get(stream)
        return None if s is None else len(s.partitions)

    def leader_address(self, stream: str, partition: int) -> str | None:
        """``host:port`` of the partition leader, if the cache knows it."""
        p = self.partition(stream, partition)
        if p is None or not p.leader:
            return None
        b = self.broker(p.leader)
        return None if b is None else b.address

    def isr_addresses(self, stream: str, partition: int) -> list[str]:
        """Addresses of the in-sync replicas the cache can resolve (the leader included)."""
        p = self.partition(stream, partition)
        if p is None:
            return []
        out = []
        for sid in p.isr:
            b = self.broker(sid)
            if b is not None:
                out.append(b.address)
        return out
