"""Pending publish acks on a partition leader, released by offset (ACK-1, ACK-6, REPL-6).

* ALL acks wait for the HW: ``release(hw)`` returns every ALL ack with offset <= HW, in offset
  order.
* LEADER acks wait for the local write to be durable under the fsync policy: the writer says
  how far that is and ``release_leader(durable_offset)`` returns them. (With no fsync policy the
  writer reports the appended offset as durable straight away.)
* NONE acks are never stored.

Work is per batch, not per message: each append adds one (offsets, acks) entry to a FIFO, and a
release pops whole entries, splitting at most one with a bisect.

Bound: at most ``pending_max`` acks are held. Above it ``add`` evicts the oldest pending acks,
ALL ones first (a client waiting that long for a commit has normally timed out already; this
is also what keeps LEADER acks flowing while the ISR is below min.insync.replicas, REPL-5),
and returns them so the caller can count them; those clients get no ack and time out, as they
would in Liftbridge. ``drain`` empties both queues when leadership is lost.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class AckPolicy(enum.IntEnum):
    """Liftbridge's ``AckPolicy`` numbers."""

    LEADER = 0
    ALL = 1
    NONE = 2


@dataclass(slots=True)
class _Batch(Generic[T]):
    offsets: list[int]
    acks: list[T]
    pos: int = 0

    @property
    def last(self) -> int:
        return self.offsets[-1]


class PendingAcks(Generic[T]):
    """Acks held by one partition leader until their message is committed or durable."""

    def __init__(self, pending_max: int = 65_536) -> None:
        assert pending_max > 0
        self.pending_max = pending_max
        self._all: deque[_Batch[T]] = deque()
        self._leader: deque[_Batch[T]] = deque()
        self._count = 0
        self._last_offset = -1
        self.evicted = 0

    def __len__(self) -> int:
        return self._count

    def room(self) -> int:
        """How many more acks fit before ``add`` starts evicting."""
        return self.pending_max - self._count

    def add(self, policy: AckPolicy, offsets: Sequence[int], acks: Sequence[T]) -> list[T]:
        """Hold ``acks[i]`` for the message at ``offsets[i]`` (one appended batch; offsets
        increasing and above every offset added before). Returns acks evicted by the bound."""
        assert len(offsets) == len(acks)
        if policy is AckPolicy.NONE or not offsets:
            return []
        assert offsets[0] > self._last_offset, (offsets[0], self._last_offset)
        assert all(a < b for a, b in itertools.pairwise(offsets)), offsets
        self._last_offset = offsets[-1]
        queue = self._all if policy is AckPolicy.ALL else self._leader
        queue.append(_Batch(list(offsets), list(acks)))
        self._count += len(offsets)
        evicted: list[T] = []
        while self._count > self.pending_max:
            victim = self._all or self._leader
            b = victim[0]
            take = min(len(b.offsets) - b.pos, self._count - self.pending_max)
            evicted.extend(b.acks[b.pos : b.pos + take])
            b.pos += take
            self._count -= take
            if b.pos == len(b.offsets):
                victim.popleft()
        self.evicted += len(evicted)
        return evicted

    def add_all(self, offsets: Sequence[int], acks: Sequence[T]) -> list[T]:
        return self.add(AckPolicy.ALL, offsets, acks)

    def add_leader(self, offsets: Sequence[int], acks: Sequence[T]) -> list[T]:
        return self.add(AckPolicy.LEADER, offsets, acks)

    def release(self, hw: int) -> list[T]:
        """ALL acks for offsets <= ``hw`` (the leader's HW), oldest first."""
        return self._release(self._all, hw)

    def release_leader(self, durable_offset: int) -> list[T]:
        """LEADER acks for offsets <= ``durable_offset`` (what the writer made durable)."""
        return self._release(self._leader, durable_offset)

    def drain(self) -> list[T]:
        """Everything pending, ALL then LEADER (leadership lost: these will never be sent)."""
        out: list[T] = []
        for q in (self._all, self._leader):
            for b in q:
                out.extend(b.acks[b.pos :])
            q.clear()
        self._count = 0
        self._last_offset = -1
        return out

    def statistics(self) -> dict[str, int]:
        return {
            "pending": self._count,
            "pending_all_batches": len(self._all),
            "pending_leader_batches": len(self._leader),
            "evicted": self.evicted,
        }

    def _release(self, q: deque[_Batch[T]], upto: int) -> list[T]:
        out: list[T] = []
        while q:
            b = q[0]
            if b.last <= upto:
                out.extend(b.acks[b.pos :] if b.pos else b.acks)
                q.popleft()
                continue
            if b.offsets[b.pos] <= upto:
                i = bisect.bisect_right(b.offsets, upto, b.pos)
                out.extend(b.acks[b.pos : i])
                b.pos = i
            break
        self._count -= len(out)
        return out
