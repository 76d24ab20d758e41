"""Retention as a pure function: segment summaries + limits + now -> which segments to delete.

Liftbridge semantics (SCFG-2, SCFG-3): limits of 0 mean unlimited; only whole segments go,
oldest first; the active (last) segment is never deleted. Age uses the newest record timestamp
of a segment as its "last write" (the storage engine never reads the clock). Deletion is always
a prefix of the segment list, so the remaining log stays contiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What retention needs to know about one segment."""

    base_offset: int
    next_offset: int
    size_bytes: int
    record_count: int
    max_timestamp_ns: int | None  # None: no records


@dataclass(frozen=True, slots=True)
class RetentionLimits:
    bytes_max: int = 0
    messages_max: int = 0
    age_ns_max: int = 0


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """Base offsets of the segments to delete (oldest first) and why."""

    delete: tuple[int, ...]
    reasons: tuple[str, ...]


def plan_retention(segments: Sequence[SegmentInfo], limits: RetentionLimits,
                   now_ns: int) -> RetentionPlan:
    """Decide which of the oldest segments to delete."""
    n_deletable = len(segments) - 1  # the active segment always stays
    if n_deletable <= 0:
        return RetentionPlan((), ())
    cut = 0
    reason = ["" for _ in segments]
    if limits.bytes_max > 0:
        total = sum(s.size_bytes for s in segments)
        i = 0
        while i < n_deletable and total > limits.bytes_max:
            total -= segments[i].size_bytes
            reason[i] = reason[i] or "bytes"
            i += 1
        cut = max(cut, i)
    if limits.messages_max > 0:
        total = sum(s.record_count for s in segments)
        i = 0
        while i < n_deletable and total > limits.messages_max:
            total -= segments[i].record_count
            reason[i] = reason[i] or "messages"
            i += 1
        cut = max(cut, i)
    if limits.age_ns_max > 0:
        horizon = now_ns - limits.age_ns_max
        i = 0
        while i < n_deletable:
            ts = segments[i].max_timestamp_ns
            if ts is not None and ts >= horizon:
                break
            reason[i] = reason[i] or "age"
            i += 1
        cut = max(cut, i)
    return RetentionPlan(tuple(s.base_offset for s in segments[:cut]), tuple(reason[:cut]))
