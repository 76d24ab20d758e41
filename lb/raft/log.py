"""The in-memory Raft log: entries after a compaction point, split into stable and unstable.

Layout::

    ... compacted ... | offset | offset+1 ... stable_index | stable_index+1 ... last_index
                                 persisted by the driver      unstable (next Ready)

``offset`` is the index just before the first retained entry. Its term is known only when it
equals the snapshot index (``offset_term`` is then the snapshot term); a leader that would need an
unknown term sends a snapshot instead. The latest snapshot may be newer than ``offset`` because
compaction keeps a trailing window of entries for slow followers.
"""

from __future__ import annotations

import itertools

from .messages import Entry, Snapshot


class RaftLog:
    """Log entries plus commit/apply cursors. Pure data structure with invariant checks."""

    __slots__ = (
        "applied",
        "committed",
        "entries",
        "offset",
        "offset_term",
        "pending_snapshot",
        "snapshot",
        "stable_index",
    )

    def __init__(self, snapshot: Snapshot, entries: list[Entry], stable: bool) -> None:
        if entries:
            first = entries[0].index
            assert first <= snapshot.index + 1, "gap between snapshot and entries"
            for a, b in itertools.pairwise(entries):
                assert b.index == a.index + 1, "entries not contiguous"
                assert b.term >= a.term, "terms decrease in log"
            self.offset = first - 1
        else:
            self.offset = snapshot.index
        self.offset_term: int | None = snapshot.term if self.offset == snapshot.index else None
        self.entries: list[Entry] = list(entries)
        self.snapshot = snapshot
        self.pending_snapshot: Snapshot | None = None
        self.committed = snapshot.index
        self.applied = snapshot.index
        self.stable_index = self.last_index() if stable else self.offset

    # -- queries -------------------------------------------------------------------------

    def first_index(self) -> int:
        return self.offset + 1

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def last_term(self) -> int:
        if self.entries:
            return self.entries[-1].term
        assert self.offset_term is not None
        return self.offset_term

    def term(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if compacted away or beyond the end."""
        if index == self.offset:
            return self.offset_term
        if index < self.offset or index > self.last_index():
            return None
        return self.entries[index - self.offset - 1].term

    def entry(self, index: int) -> Entry:
        assert self.offset < index <= self.last_index(), "entry not available"
        return self.entries[index - self.offset - 1]

    def match_term(self, index: int, term: int) -> bool:
        t = self.term(index)
        return t is not None and t == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a log ending at (last_index, last_term) at least as up to date as ours?"""
        lt = self.last_term()
        return last_term > lt or (last_term == lt and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi), at least one if any, then up to ``max_bytes`` in total."""
        assert lo > self.offset and hi <= self.last_index() + 1
        out: list[Entry] = []
        size = 0
        for i in range(lo - self.offset - 1, hi - self.offset - 1):
            e = self.entries[i]
            size += e.size_bytes()
            if out and size > max_bytes:
                break
            out.append(e)
        return out

    def unstable_entries(self) -> list[Entry]:
        return self.entries[self.stable_index - self.offset :]

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest index <= ``index`` whose term is <= ``term`` (compacted counts as a match).

        Used by both sides of conflict back-off so that one round trip skips a whole term.
        """
        i = min(index, self.last_index())
        while i > self.offset:
            if self.entries[i - self.offset - 1].term <= term:
                return i
            i -= 1
        return i

    # -- mutations ----------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> None:
        """Append after the last entry, or truncate a conflicting uncommitted suffix first."""
        if not entries:
            return
        first = entries[0].index
        assert first > self.committed, "would overwrite committed entries"
        assert first <= self.last_index() + 1, "gap in log"
        if first <= self.last_index():
            del self.entries[first - self.offset - 1 :]
            self.stable_index = min(self.stable_index, first - 1)
        assert not self.entries or entries[0].term >= self.entries[-1].term
        self.entries.extend(entries)

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: list[Entry]
    ) -> int | None:
        """Follower side of APPEND. Returns the last new index, or None on mismatch."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = 0
        for e in entries:
            t = self.term(e.index)
            if t is None and e.index <= self.offset:
                continue  # already compacted, so committed and identical
            if t != e.term:
                conflict = e.index
                break
        if conflict:
            assert conflict > self.committed, "conflict with a committed entry"
            self.append(entries[conflict - entries[0].index :])
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index(), "commit beyond last index"
            self.committed = index

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        assert self.applied <= index <= self.committed, "applied out of range"
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        if index > self.stable_index and self.match_term(index, term):
            self.stable_index = index

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        assert snapshot.index > self.committed, "restore would move commit back"
        self.entries = []
        self.offset = snapshot.index
        self.offset_term = snapshot.term
        self.snapshot = snapshot
        self.pending_snapshot = snapshot
        self.committed = snapshot.index
        self.stable_index = snapshot.index
        self.applied = snapshot.index

    def compact(self, snapshot: Snapshot, trailing_entries: int) -> None:
        """Record a local snapshot and drop entries up to ``snapshot.index - trailing``."""
        assert snapshot.index <= self.applied, "snapshot of unapplied state"
        assert snapshot.index <= self.stable_index, "snapshot of unpersisted entries"
        if snapshot.index > self.snapshot.index:
            self.snapshot = snapshot
        cut = snapshot.index - trailing_entries
        if cut <= self.offset:
            return
        cut_term = self.term(cut)
        assert cut_term is not None
        del self.entries[: cut - self.offset]
        self.offset = cut
        self.offset_term = cut_term
