"""The leader-epoch cache: epoch -> start offset, durable, truncated along with the log.

Why: a follower that restarts must cut only what diverged from the leader (KIP-101). It asks
the leader "where does my latest epoch end?" and truncates to that, instead of to its HW.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from lb.storage import checkpoint
from lb.storage.errors import EpochRegressionError

UNDEFINED = -1


class LeaderEpochCache:
    """Sorted (epoch, start_offset) entries; epochs strictly grow, start offsets never shrink.

    Every change is written to ``leader-epoch-checkpoint`` before the method returns. Changes
    are rare (one per leader change, plus truncations), so the fsync cost is negligible.
    """

    def __init__(self, directory: str, leo: Callable[[], int],
                 entries: list[tuple[int, int]] | None = None) -> None:
        self._dir = directory
        self._leo = leo
        self._entries: list[tuple[int, int]] = list(entries or [])

    @property
    def entries(self) -> list[tuple[int, int]]:
        """A copy of the (epoch, start_offset) entries, oldest first."""
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1][0] if self._entries else UNDEFINED

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset``. Same epoch again is a no-op."""
        if self._entries:
            last_epoch, last_start = self._entries[-1]
            if epoch == last_epoch:
                return
            if epoch < last_epoch:
                raise EpochRegressionError(last_epoch, epoch)
            assert start_offset >= last_start, (epoch, start_offset, self._entries[-1])
        self._entries.append((epoch, start_offset))
        self._persist()

    def end_offset_for(self, epoch: int) -> tuple[int, int]:
        """(largest known epoch <= ``epoch``, end offset of ``epoch``), KIP-101/279 semantics.

        The end offset is the start offset of the next higher epoch, or the LEO when ``epoch``
        is the latest. An epoch above the latest, or an empty cache, gives (-1, -1). An epoch
        below the earliest gives (epoch, start of the earliest).
        """
        if not self._entries or epoch < 0:
            return UNDEFINED, UNDEFINED
        latest = self._entries[-1][0]
        if epoch == latest:
            return epoch, self._leo()
        if epoch > latest:
            return UNDEFINED, UNDEFINED
        i = bisect.bisect_right(self._entries, (epoch, float("inf")))
        higher_start = self._entries[i][1]
        if i == 0:
            return epoch, higher_start
        return self._entries[i - 1][0], higher_start

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after ``end_offset`` (the log was cut there)."""
        keep = [e for e in self._entries if e[1] < end_offset]
        if keep != self._entries:
            self._entries = keep
            self._persist()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: drop epochs wholly before it, clamp the rest."""
        i = bisect.bisect_right([o for _, o in self._entries], start_offset)
        if i == 0:
            return
        keep = self._entries[i - 1 :]
        keep[0] = (keep[0][0], start_offset)
        if keep != self._entries:
            self._entries = keep
            self._persist()

    def clear(self) -> None:
        if self._entries:
            self._entries = []
            self._persist()

    def _persist(self) -> None:
        checkpoint.write_atomic(self._dir, checkpoint.EPOCH_FILE,
                                checkpoint.encode_epochs(self._entries))
