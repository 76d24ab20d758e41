"""The metadata model: immutable records for streams, partitions and servers.

Records are frozen so that the state machine can hand them to the server (in effects and query
results) without copying and without the server being able to change replicated state behind
the state machine's back. A change replaces a record (``dataclasses.replace``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

RESERVED_STREAMS: frozenset[str] = frozenset({"__activity", "__cursors"})
"""Stream names that only the server itself creates (API-CREATE-5)."""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Per-stream overrides from CreateStreamRequest; ``None`` means "use the server default".

    Durations are milliseconds, as the API gives them (WIRE-6). An explicit 0/False is kept
    as an override (SCFG-1).
    """

    retention_max_bytes: int | None = None
    retention_max_messages: int | None = None
    retention_max_age_ms: int | None = None
    cleaner_interval_ms: int | None = None
    segment_max_bytes: int | None = None
    segment_max_age_ms: int | None = None
    compact_max_goroutines: int | None = None
    compact_enabled: bool | None = None
    auto_pause_time_ms: int | None = None
    auto_pause_disable_if_subscribers: bool | None = None
    min_isr: int | None = None
    optimistic_concurrency_control: bool | None = None
    encryption: bool | None = None


STREAM_CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StreamConfig))


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition's replicated metadata.

    Invariants (checked by ``check``): ISR is a non-empty subset of the replicas, the leader is
    in the ISR, and ``leader_epoch <= epoch`` (a leader change moves both).
    """

    stream: str
    id: int
    replicas: tuple[str, ...]
    leader: str
    isr: tuple[str, ...]
    epoch: int
    leader_epoch: int
    paused: bool = False
    readonly: bool = False

    def check(self) -> None:
        """Assert the record's invariants (cheap; called on every change)."""
        assert self.id >= 0, self
        assert self.replicas and len(set(self.replicas)) == len(self.replicas), self
        assert self.isr and len(set(self.isr)) == len(self.isr), self
        assert set(self.isr) <= set(self.replicas), self
        assert self.leader in self.isr, self
        assert 0 < self.leader_epoch <= self.epoch, self

    def is_replica(self, server_id: str) -> bool:
        return server_id in self.replicas


@dataclass(frozen=True, slots=True)
class Stream:
    """One stream: its subject, options and partitions (``partitions[i].id == i``)."""

    name: str
    subject: str
    group: str
    creation_timestamp_ns: int
    replication_factor: int
    config: StreamConfig
    partitions: tuple[Partition, ...]
    resume_all: bool = False

    def check(self) -> None:
        assert self.partitions, self.name
        for i, p in enumerate(self.partitions):
            assert p.id == i and p.stream == self.name, (self.name, i, p)
            p.check()

    def partition(self, partition_id: int) -> Partition | None:
        if 0 <= partition_id < len(self.partitions):
            return self.partitions[partition_id]
        return None

    def partition_subject(self, partition_id: int) -> str:
        """The NATS subject partition ``partition_id`` listens on (PART-1)."""
        return partition_subject(self.subject, partition_id)


def partition_subject(stream_subject: str, partition_id: int) -> str:
    """Partition 0 listens on the stream subject, partition n on ``<subject>.<n>`` (PART-1)."""
    return stream_subject if partition_id == 0 else f"{stream_subject}.{partition_id}"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """A server's advertised gRPC address (FetchMetadata brokers)."""

    id: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """Placeholder for consumer groups: kept in state and snapshot, not built yet."""

    id: str
    coordinator: str
    epoch: int
    members: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(slots=True)
class MetadataState:
    """Everything the metadata Raft group replicates.

    The dicts are owned by the state machine; their values are immutable records.
    ``applied_index`` is the Raft index of the last entry given to ``apply``.
    """

    streams: dict[str, Stream] = field(default_factory=dict)
    servers: dict[str, ServerInfo] = field(default_factory=dict)
    groups: dict[str, ConsumerGroup] = field(default_factory=dict)
    applied_index: int = 0

    def copy(self) -> MetadataState:
        """A shallow copy: the records are immutable, so this is an independent state (for
        example to encode a snapshot while apply goes on)."""
        return MetadataState(
            dict(self.streams), dict(self.servers), dict(self.groups), self.applied_index
        )

    def stream(self, name: str) -> Stream | None:
        return self.streams.get(name)

    def partition(self, stream: str, partition_id: int) -> Partition | None:
        s = self.streams.get(stream)
        return None if s is None else s.partition(partition_id)

    def iter_partitions(self) -> Iterator[Partition]:
        """Every partition, streams in name order, partitions in id order."""
        for name in sorted(self.streams):
            yield from self.streams[name].partitions

    def partition_load(self) -> dict[str, int]:
        """Replicas per server over unpaused partitions (placement input, META-4 counts)."""
        load: dict[str, int] = {}
        for s in self.streams.values():
            for p in s.partitions:
                if not p.paused:
                    for r in p.replicas:
                        load[r] = load.get(r, 0) + 1
        return load

    def leader_load(self) -> dict[str, int]:
        """Partitions led per server over unpaused partitions."""
        load: dict[str, int] = {}
        for s in self.streams.values():
            for p in s.partitions:
                if not p.paused:
                    load[p.leader] = load.get(p.leader, 0) + 1
        return load

    def check(self) -> None:
        """Assert every record's invariants (used by tests and after restore)."""
        for name, s in self.streams.items():
            assert s.name == name
            s.check()
            for p in s.partitions:
                assert p.epoch <= self.applied_index, (p, self.applied_index)
        for sid, info in self.servers.items():
            assert info.id == sid
