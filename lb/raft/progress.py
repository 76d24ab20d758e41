"""What a leader knows about one follower's log, and how much it may send it.

A follower is in one of three states (as in etcd raft):

- PROBE: the leader does not know where the logs agree; it sends one append at a time and waits
  for the answer (or a heartbeat response) before the next.
- REPLICATE: logs agree up to ``match``; the leader streams appends optimistically, bounded by
  ``inflight_max`` unacknowledged messages.
- SNAPSHOT: the follower needs entries that were compacted away; a snapshot is on its way and
  nothing else is sent until it is acknowledged (or the resend interval passes).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@dataclass(slots=True)
class Progress:
    """Replication progress of one peer, owned by the leader."""

    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    pending_snapshot: int = 0
    snapshot_elapsed_ticks: int = 0
    recent_active: bool = False
    match_at_last_round: int = 0
    """``match`` at the previous check round; no movement with entries outstanding = stall."""
    sent_since_heartbeat: bool = False
    """An append went out since the last heartbeat round, so the next heartbeat is redundant."""
    is_learner: bool = False
    inflight_max: int = 64
    inflights: deque[int] = field(default_factory=deque)

    def become_probe(self) -> None:
        # After a snapshot, continue right after it; otherwise after what we know matches.
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.clear()

    def become_snapshot(self, snapshot_index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = snapshot_index
        self.snapshot_elapsed_ticks = 0
        self.probe_sent = False
        self.inflights.clear()

    def is_paused(self) -> bool:
        """True when the leader must not send another append now (flow control)."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflights) >= self.inflight_max
        return True

    def sent_entries(self, last_index: int | None) -> None:
        """Record an append just sent; ``last_index`` is its last entry (None if empty)."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                assert last_index >= self.next, "replicate must move forward"
                self.next = last_index + 1
                self.inflights.append(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """Follower acknowledged everything up to ``index``; False if that is old news."""
        updated = False
        if index > self.match:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        while self.inflights and self.inflights[0] <= index:
            self.inflights.popleft()
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """Follower rejected the append after ``rejected``; back off towards ``match_hint``.

        Returns False for a stale rejection (one that answers an older append).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True
