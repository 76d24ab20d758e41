"""The partition follower's replication decisions: truncation, fetch offsets, HW, idling.

Pure: the Trio layer owns the log; this object owns the follower's view of it (LEO and HW) and
says what to do next. The core's view changes first and the caller makes the log match: after
``truncation_point`` cut the log to the returned offset; after an accepted fetch outcome append
the response's batches and store the outcome's HW.

Life cycle for one leader epoch (create a new ``FollowerState`` on every leader change and on
restart):

1. TRUNCATING: send ``epoch_request(latest_epoch)``; feed the answer to ``truncation_point``;
   cut the log; repeat while the returned ``Truncation.done`` is False (KIP-279: the leader
   did not know our latest epoch, so we step down one epoch at a time).
2. FETCHING: ``next_fetch()`` -> send; ``on_fetch_response`` -> append / drop; wait
   ``next_fetch_delay_ns`` (cut short by a leader notification); repeat. An OFFSET_AHEAD
   answer sends the follower back to step 1.

Committed offsets are never cut: truncation stops at ``HW + 1`` (asserted), because every
committed offset is on every ISR member, hence on any elected leader, with the same epoch.
"""

from __future__ import annotations

import enum
import random

from lb.replication.messages import (
    UNDEFINED,
    EpochLookup,
    EpochRequest,
    EpochResponse,
    FetchOutcome,
    FetchRequest,
    FetchResponse,
    FetchVerdict,
    OutcomeKind,
    Truncation,
)


class Phase(enum.Enum):
    TRUNCATING = "truncating"
    FETCHING = "fetching"


class TruncationBelowHighWatermark(AssertionError):
    """The leader's log disagrees with offsets this follower holds as committed.

    Only possible when committed data was lost (e.g. the unsynced tails of every ISR member
    died together). The default is to stop: the partition needs an operator's decision.
    """


class FollowerState:
    """One partition's follower-side replication state for one leader epoch."""

    def __init__(
        self,
        replica_id: str,
        leader_id: str,
        leader_epoch: int,
        local_leo: int,
        local_hw: int,
        now_ns: int,
        *,
        idle_wait_ns_max: int = 10_000_000_000,
        idle_jitter_ns_max: int = 0,
    ) -> None:
        assert replica_id != leader_id
        assert local_leo >= 0 and UNDEFINED <= local_hw <= local_leo - 1, (local_hw, local_leo)
        assert 0 <= idle_jitter_ns_max <= idle_wait_ns_max
        self.replica_id = replica_id
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.idle_wait_ns_max = idle_wait_ns_max
        self.idle_jitter_ns_max = idle_jitter_ns_max
        self.phase = Phase.TRUNCATING
        self._leo = local_leo
        self._hw = local_hw
        self._last_heard_ns = now_ns
        self._requested_epoch: int | None = None
        self.dropped = 0

    # ----- reading -----

    @property
    def leo(self) -> int:
        return self._leo

    @property
    def high_watermark(self) -> int:
        """Last committed offset known here; readers on this replica see offsets <= HW."""
        return self._hw

    # ----- step 1: truncation -----

    def epoch_request(self, latest_epoch: int) -> EpochRequest:
        """The KIP-101 request for ``latest_epoch`` (the local epoch cache's latest)."""
        assert self.phase is Phase.TRUNCATING
        self._requested_epoch = latest_epoch
        return EpochRequest(self.replica_id, self.leader_epoch, latest_epoch)

    def truncation_point(
        self, resp: EpochResponse, local_epochs: EpochLookup, *, unclean_ok: bool = False
    ) -> Truncation | None:
        """Decide where to cut the log given the leader's answer; None means "ignore this
        answer" (wrong leader epoch, an error, or not the answer to the outstanding request).

        * leader knows no epoch <= ours (-1): fall back to ``HW + 1`` (Liftbridge);
        * leader has our epoch: cut at ``min(LEO, leader end offset)``;
        * leader's largest epoch E is older than ours: cut at ``min(leader end of E, our end
          of E)``; done only if we also have E, else ask again with our new latest epoch.

        The cut never removes an offset <= HW; that raises ``TruncationBelowHighWatermark``
        unless ``unclean_ok``, which allows it (the HW drops with the log) and says so in
        ``Truncation.below_hw``.
        """
        if (
            self.phase is not Phase.TRUNCATING
            or resp.error
            or resp.leader_epoch != self.leader_epoch
            or self._requested_epoch is None
            or resp.requested_epoch != self._requested_epoch
        ):
            self.dropped += 1
            return None
        requested = self._requested_epoch
        self._requested_epoch = None
        if requested == UNDEFINED or resp.epoch == UNDEFINED or resp.end_offset == UNDEFINED:
            point, done = min(self._leo, self._hw + 1), True
        elif resp.epoch == requested:
            point, done = min(self._leo, resp.end_offset), True
        else:
            assert resp.epoch < requested, (resp, requested)
            own_epoch, own_end = local_epochs.end_offset_for(resp.epoch)
            if own_end == UNDEFINED:
                own_end = self._leo
            point = min(self._leo, resp.end_offset, own_end)
            done = own_epoch == resp.epoch
        below = point < self._hw + 1
        if below:
            if not unclean_ok:
                raise TruncationBelowHighWatermark(
                    f"{self.replica_id}: truncation to {point} would cut committed offsets "
                    f"(HW {self._hw}); leader {self.leader_id} epoch {self.leader_epoch}"
                )
            self._hw = point - 1
        assert 0 <= point <= self._leo, (point, self._leo)
        self._leo = point
        if done or point == 0:
            done = True
            self.phase = Phase.FETCHING
        return Truncation(point, done, below)

    def retruncate(self) -> None:
        """Go back to step 1 (e.g. the log was found to be ahead of the leader's)."""
        self.phase = Phase.TRUNCATING
        self._requested_epoch = None

    # ----- step 2: fetching -----

    def next_fetch(self) -> FetchRequest:
        assert self.phase is Phase.FETCHING
        return FetchRequest(self.replica_id, self.leader_epoch, self._leo)

    def on_fetch_response(self, resp: FetchResponse, now_ns: int) -> FetchOutcome:
        """Judge one response (Liftbridge drops a response of another leader epoch or whose
        first offset is not the expected fetch offset; so do we, also for duplicates and
        reordered responses). Accepted: the LEO and HW move; the caller appends and stores."""
        if resp.leader_epoch != self.leader_epoch:
            return self._drop("leader epoch mismatch")
        if now_ns > self._last_heard_ns:
            self._last_heard_ns = now_ns
        if self.phase is not Phase.FETCHING:
            return self._drop("not fetching")
        if resp.error is FetchVerdict.OFFSET_AHEAD:
            self.retruncate()
            return FetchOutcome(OutcomeKind.RETRUNCATE, self._leo, self._hw, reason="offset ahead")
        if resp.error is not None:
            return self._drop(f"leader refused: {resp.error.value}")
        if resp.has_batches:
            if resp.first_offset != self._leo:
                return self._drop(f"first offset {resp.first_offset} != expected {self._leo}")
            assert resp.last_offset >= resp.first_offset, resp
            new_leo = resp.last_offset + 1
            append, caught_up = True, False
        else:
            new_leo, append, caught_up = self._leo, False, True
        self._leo = new_leo
        candidate = min(resp.hw, new_leo - 1)
        if candidate > self._hw:
            self._hw = candidate
        assert UNDEFINED <= self._hw <= self._leo - 1, (self._hw, self._leo)
        return FetchOutcome(OutcomeKind.ACCEPTED, new_leo, self._hw, append, caught_up)

    def leader_silent(self, now_ns: int, leader_timeout_ns: int) -> bool:
        """True when nothing came from the leader (under this epoch) for longer than
        ``leader_timeout_ns``: report it to the controller (REPL-3)."""
        return now_ns - self._last_heard_ns > leader_timeout_ns

    def next_fetch_delay_ns(
        self, caught_up: bool, notified: bool, rng: random.Random | None = None
    ) -> int:
        """How long to wait before the next fetch: none while behind or once notified of new
        data; else the idle wait, minus up to ``idle_jitter_ns_max`` (REPL-10). A
        notification arriving during the wait cuts it short (the caller's job)."""
        if notified or not caught_up:
            return 0
        jitter = rng.randint(0, self.idle_jitter_ns_max) if rng and self.idle_jitter_ns_max else 0
        return self.idle_wait_ns_max - jitter

    def statistics(self) -> dict[str, int]:
        return {"leo": self._leo, "hw": self._hw, "dropped": self.dropped}

    def _drop(self, reason: str) -> FetchOutcome:
        self.dropped += 1
        return FetchOutcome(OutcomeKind.DROPPED, self._leo, self._hw, reason=reason)
