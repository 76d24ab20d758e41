"""In-memory partition log for the replication simulator: entries, a synced prefix, a
leader-epoch cache with ``lb.storage.epochs`` semantics, and a HW checkpoint.

A crash keeps only what was synced (entries up to ``synced``, the last HW checkpoint, and the
epoch cache filtered to epochs starting below the surviving LEO, as ``lb.storage`` recovery
does). Offsets are list indexes: the log starts at 0 and has no retention.
"""

from __future__ import annotations

import bisect

UNDEFINED = -1

Entry = tuple[int, bytes]
"""(leader_epoch, payload) stored at offset = list index."""


class MemEpochCache:
    """``lb.storage.epochs.LeaderEpochCache`` without the file (the epoch checkpoint is written
    synchronously there, so the simulator treats every change as durable)."""

    def __init__(self, log: MemLog) -> None:
        self._log = log
        self.entries: list[tuple[int, int]] = []

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED

    def assign(self, epoch: int, start_offset: int) -> None:
        if self.entries:
            last_epoch, last_start = self.entries[-1]
            if epoch == last_epoch:
                return
            assert epoch > last_epoch, (epoch, self.entries)
            assert start_offset >= last_start, (epoch, start_offset, self.entries)
        self.entries.append((epoch, start_offset))

    def end_offset_for(self, epoch: int) -> tuple[int, int]:
        if not self.entries or epoch < 0:
            return UNDEFINED, UNDEFINED
        latest = self.entries[-1][0]
        if epoch == latest:
            return epoch, self._log.leo
        if epoch > latest:
            return UNDEFINED, UNDEFINED
        i = bisect.bisect_right(self.entries, (epoch, float("inf")))
        higher_start = self.entries[i][1]
        if i == 0:
            return epoch, higher_start
        return self.entries[i - 1][0], higher_start

    def truncate_from_end(self, end_offset: int) -> None:
        while self.entries and self.entries[-1][1] >= end_offset:
            self.entries.pop()


class MemLog:
    """One replica's log as the simulator models it."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.synced = 0
        """Entries [0, synced) survive a crash."""
        self.hw_checkpoint = UNDEFINED
        self.epochs = MemEpochCache(self)

    @property
    def leo(self) -> int:
        return len(self.entries)

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        for epoch, payload in entries:
            if epoch != self.epochs.latest_epoch:
                self.epochs.assign(epoch, len(self.entries))
            self.entries.append((epoch, payload))

    def truncate(self, offset: int) -> None:
        assert 0 <= offset <= self.leo, (offset, self.leo)
        del self.entries[offset:]
        self.synced = min(self.synced, offset)
        self.epochs.truncate_from_end(offset)

    def sync(self, hw: int) -> None:
        self.synced = len(self.entries)
        self.hw_checkpoint = hw

    def crash(self) -> range:
        """Lose the unsynced tail; returns the offsets lost."""
        lost = range(self.synced, len(self.entries))
        del self.entries[self.synced :]
        self.epochs.truncate_from_end(len(self.entries))
        self.hw_checkpoint = min(self.hw_checkpoint, len(self.entries) - 1)
        return lost
