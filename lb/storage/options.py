"""Log options (Liftbridge ``streams.*`` keys) and fsync policies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

MiB = 1 << 20
SECOND_NS = 1_000_000_000

FsyncKind = Literal["never", "interval", "batch", "messages"]


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """When the log fsyncs, and therefore what "durable" promises.

    - ``never``: the OS decides (Liftbridge's and Kafka's behaviour). Appends are never
      reported durable by the policy; durability comes from replication. ``sync()`` still works
      (``close`` calls it).
    - ``interval``: a sync is due once the oldest unsynced append is ``interval_ns`` old.
    - ``batch``: group commit. Every append makes a sync due; the writer acknowledges a batch
      only after the sync that covers it (several appends may share one sync).
    - ``messages``: a sync is due once ``messages`` appended messages are unsynced.
    """

    kind: FsyncKind = "never"
    interval_ns: int = 0
    messages: int = 0

    def __post_init__(self) -> None:
        if self.kind == "interval" and self.interval_ns <= 0:
            raise ValueError("interval fsync policy needs interval_ns > 0")
        if self.kind == "messages" and self.messages <= 0:
            raise ValueError("messages fsync policy needs messages > 0")
        if self.kind not in ("never", "interval", "batch", "messages"):
            raise ValueError(f"unknown fsync policy {self.kind!r}")

    @classmethod
    def never(cls) -> FsyncPolicy:
        return cls("never")

    @classmethod
    def batch(cls) -> FsyncPolicy:
        return cls("batch")

    @classmethod
    def interval(cls, interval_ns: int) -> FsyncPolicy:
        return cls("interval", interval_ns=interval_ns)

    @classmethod
    def every_messages(cls, messages: int) -> FsyncPolicy:
        return cls("messages", messages=messages)

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """``never`` | ``batch`` | ``interval:<duration>`` (e.g. 50ms, 1s) | ``messages:<N>``."""
        text = text.strip().lower()
        if text in ("never", "batch"):
            return cls(text)  # type: ignore[arg-type]
        kind, _, arg = text.partition(":")
        if kind == "interval":
            return cls.interval(parse_duration_ns(arg))
        if kind == "messages":
            return cls.every_messages(int(arg))
        raise ValueError(f"unknown fsync policy {text!r}")

    def __str__(self) -> str:
        if self.kind == "interval":
            return f"interval:{self.interval_ns}ns"
        if self.kind == "messages":
            return f"messages:{self.messages}"
        return self.kind


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": SECOND_NS,
            "m": 60 * SECOND_NS, "h": 3600 * SECOND_NS}


def parse_duration_ns(text: str) -> int:
    """Parse a Go-style duration ("1h30m", "250ms") to ns."""
    text = text.strip()
    pos = 0
    total = 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad duration {text!r}")
    return int(total)


@dataclass(frozen=True, slots=True)
class LogOptions:
    """Options of one partition log. Liftbridge key in brackets; 0 means "no limit".

    ``segment_age_ns_max`` [segment.max.age]: Liftbridge defaults it to the retention age; the
    server computes that, here 0 means "no age-based roll". ``cleaner_interval_ns``
    [cleaner.interval] is informational: the server calls ``CommitLog.clean`` on that period.
    """

    segment_bytes_max: int = 256 * MiB  # segment.max.bytes
    segment_age_ns_max: int = 0  # segment.max.age
    retention_bytes_max: int = 0  # retention.max.bytes
    retention_messages_max: int = 0  # retention.max.messages
    retention_age_ns_max: int = 0  # retention.max.age
    compact_enabled: bool = False  # compact.enabled
    cleaner_interval_ns: int = 300 * SECOND_NS  # cleaner.interval
    fsync: FsyncPolicy = field(default_factory=FsyncPolicy.never)
    index_interval_bytes: int = 4096
    batch_bytes_max: int = 1 * MiB  # one append is split into batches of at most this size
    batch_messages_max: int = 10_000
    append_messages_max: int = 100_000  # bound on one append call
    read_bytes_max: int = 16 * MiB  # hard cap on any read, whatever the caller asks
    verify_on_open: bool = True  # CRC-check sealed segments on open (the last always is)

    def __post_init__(self) -> None:
        assert self.segment_bytes_max > 0
        assert self.index_interval_bytes > 0
        assert self.batch_bytes_max > 0 and self.batch_messages_max > 0
        assert self.read_bytes_max > 0


_LB_KEYS: dict[str, str] = {
    "segment.max.bytes": "segment_bytes_max",
    "segment.max.age": "segment_age_ns_max",
    "retention.max.bytes": "retention_bytes_max",
    "retention.max.messages": "retention_messages_max",
    "retention.max.age": "retention_age_ns_max",
    "compact.enabled": "compact_enabled",
    "cleaner.interval": "cleaner_interval_ns",
}


def options_from_liftbridge(values: Mapping[str, object], **extra: object) -> LogOptions:
    """Build options from Liftbridge ``streams.*`` keys (durations as ns ints or strings)."""
    kwargs: dict[str, object] = dict(extra)
    for key, value in values.items():
        name = _LB_KEYS.get(key)
        if name is None:
            raise KeyError(f"unknown stream option {key!r}")
        if name.endswith("_ns_max") or name.endswith("_interval_ns"):
            value = parse_duration_ns(value) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
        kwargs[name] = value
    return LogOptions(**kwargs)  # type: ignore[arg-type]
