"""The partition leader's replication decisions: follower progress, HW, ISR shrink/expand.

Pure: the Trio layer feeds it fetch requests, local appends, the controller's ISR and the time
(``now_ns`` values), and reads back the HW and the ISR change proposals. Nothing here reads a
log; answering a fetch with data is the caller's job.

Rules (Liftbridge REPL-1/2/5/6, made safe with Kafka's refinements):

* **HW** is the last committed offset: ``min(LEO over the ISR, leader included) - 1``, or -1.
  It only advances, never while the ISR is smaller than ``min_isr`` (REPL-5), and not while an
  ISR member's LEO is unknown (a new leader does not know its followers until they fetch).
* The ISR used for the HW is the **maximal ISR**: the controller's ISR plus replicas the leader
  has proposed to add (Kafka KIP-497). Additions count from the moment they are proposed,
  removals only once the controller has applied them. So whatever ISR the controller holds,
  every member of it has every committed offset, and any of them can be elected safely.
* **Caught up** (Kafka's rule): a fetch at time t whose offset is >= the leader's LEO makes the
  follower caught up at t; a fetch whose offset is >= the leader's LEO at the replica's
  *previous* fetch makes it caught up at that previous fetch's time (so a follower that keeps
  up with a steady stream, always one batch behind, stays in sync).
* **Shrink** an ISR follower whose last caught-up time is older than ``lag_ns_max`` (this
  covers both "stopped fetching" and "stays behind", REPL-2). The leader never removes itself.
* **Expand** a non-ISR replica that was caught up within ``lag_ns_max`` and whose LEO is past
  the HW and the start of this leader epoch.
* One proposal per replica is outstanding at a time. It is sent again after
  ``proposal_retry_ns`` without an answer, and is settled by any controller ISR with a newer
  partition epoch (the controller applies proposals conditionally on the epoch they were based
  on, so an older proposal can no longer apply).
* Fetches count only under the leader's own epoch: a follower fetches with the epoch it has
  truncated against (KIP-101), so an unreconciled tail never counts as replicated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lb.replication.messages import (
    UNDEFINED,
    EpochLookup,
    EpochRequest,
    EpochResponse,
    FetchVerdict,
    IsrChange,
    IsrChangeKind,
)


@dataclass(slots=True)
class ReplicaProgress:
    """What the leader knows about one follower (all times are ``now_ns`` values)."""

    leo: int = UNDEFINED
    """The follower's LEO (= its last fetch offset under this epoch); -1 until it fetches."""
    last_fetch_ns: int | None = None
    caught_up_ns: int | None = None
    """Last time the follower was known to have the leader's whole log."""
    leader_leo_at_last_fetch: int = UNDEFINED
    waiting: bool = False
    """Its last fetch found nothing new: notify it when data arrives (REPL-10)."""


@dataclass(slots=True)
class _Pending:
    change: IsrChange
    sent_ns: int


class LeaderState:
    """One partition's leader-side replication state for one leader epoch.

    Create a new one on every leader election (the epoch is fixed for its lifetime). ``hw``
    is the leader's own HW when it took over (restored or learnt as a follower); ``leo`` is its
    LEO, which is also where this epoch starts.
    """

    def __init__(
        self,
        leader_id: str,
        leader_epoch: int,
        replicas: Iterable[str],
        isr: Iterable[str],
        min_isr: int,
        lag_ns_max: int,
        now_ns: int,
        leo: int,
        *,
        hw: int = UNDEFINED,
        partition_epoch: int = 0,
        proposal_retry_ns: int | None = None,
    ) -> None:
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.replicas: tuple[str, ...] = tuple(replicas)
        isr_t = tuple(isr)
        assert leader_id in self.replicas and leader_id in isr_t, (leader_id, isr_t)
        assert set(isr_t) <= set(self.replicas), (isr_t, self.replicas)
        assert min_isr >= 1 and lag_ns_max > 0 and leo >= 0
        assert UNDEFINED <= hw <= leo - 1, (hw, leo)
        self.min_isr = min_isr
        self.lag_ns_max = lag_ns_max
        self.proposal_retry_ns = lag_ns_max if proposal_retry_ns is None else proposal_retry_ns
        self.epoch_start_offset = leo
        self.partition_epoch = partition_epoch
        self._leo = leo
        self._hw = hw
        self._now_ns = now_ns
        self._isr = isr_t
        self._progress: dict[str, ReplicaProgress] = {}
        for r in self.replicas:
            if r != leader_id:
                # ISR members get the benefit of the doubt for one lag window (Kafka does the
                # same on election); others must prove they caught up.
                self._progress[r] = ReplicaProgress(caught_up_ns=now_ns if r in isr_t else None)
        self._pending: dict[str, _Pending] = {}
        self._counted: tuple[str, ...] = ()
        self._recount()
        self._update_hw()

    # ----- reading -----

    @property
    def high_watermark(self) -> int:
        """Offset of the last committed message (-1: none). Release ALL acks up to here."""
        return self._hw

    @property
    def leo(self) -> int:
        return self._leo

    @property
    def isr(self) -> tuple[str, ...]:
        """The controller's ISR as last applied."""
        return self._isr

    @property
    def maximal_isr(self) -> tuple[str, ...]:
        """The ISR the HW is computed over: ``isr`` plus pending additions."""
        return (self.leader_id, *self._counted)

    def progress(self, replica_id: str) -> ReplicaProgress:
        return self._progress[replica_id]

    def pending(self) -> list[IsrChange]:
        return [p.change for p in self._pending.values()]

    def can_commit(self) -> bool:
        """False while the ISR is below ``min_isr`` (REPL-5): ALL acks wait."""
        return len(self._isr) >= self.min_isr

    # ----- inputs -----

    def on_fetch(
        self, replica_id: str, fetch_offset: int, now_ns: int, leader_epoch: int | None = None
    ) -> FetchVerdict:
        """A follower fetched at ``fetch_offset`` (= its LEO). Record it; maybe advance the HW.

        ``leader_epoch`` is the epoch carried by the request; pass it (None skips the check
        and is only for tests). Anything but ``OK`` must not be answered with data: STALE_EPOCH
        is ignored, OFFSET_AHEAD tells the follower to truncate again.
        """
        self._advance_time(now_ns)
        if leader_epoch is not None and leader_epoch != self.leader_epoch:
            return FetchVerdict.STALE_EPOCH
        p = self._progress.get(replica_id)
        if p is None:
            return FetchVerdict.NOT_A_REPLICA
        if fetch_offset > self._leo:
            return FetchVerdict.OFFSET_AHEAD
        assert fetch_offset >= 0, fetch_offset
        if fetch_offset >= self._leo:
            p.caught_up_ns = now_ns
        elif (
            p.leader_leo_at_last_fetch != UNDEFINED
            and fetch_offset >= p.leader_leo_at_last_fetch
            and p.last_fetch_ns is not None
        ) and (p.caught_up_ns is None or p.caught_up_ns < p.last_fetch_ns):
            p.caught_up_ns = p.last_fetch_ns
        p.leader_leo_at_last_fetch = self._leo
        p.last_fetch_ns = now_ns
        p.leo = fetch_offset
        p.waiting = fetch_offset >= self._leo
        if replica_id in self._counted:
            self._update_hw()
        return FetchVerdict.OK

    def on_local_append(self, new_leo: int) -> list[str]:
        """The leader's log now ends at ``new_leo``. Returns the idle followers to notify of
        new data (each once until it fetches again)."""
        assert new_leo >= self._leo, (new_leo, self._leo)
        self._leo = new_leo
        self._update_hw()
        notify = [r for r, p in self._progress.items() if p.waiting]
        for r in notify:
            self._progress[r].waiting = False
        return notify

    def apply_isr(self, isr: Iterable[str], partition_epoch: int) -> bool:
        """The controller's committed ISR at ``partition_epoch``. Older epochs are ignored
        (returns False). A shrink can let pending ALL messages commit (REPL-6): read the HW
        after this call."""
        if partition_epoch <= self.partition_epoch:
            return False
        isr_t = tuple(isr)
        assert self.leader_id in isr_t, (self.leader_id, isr_t)  # else we were deposed
        assert set(isr_t) <= set(self.replicas), (isr_t, self.replicas)
        for r in isr_t:
            p = self._progress.get(r)
            if r not in self._isr and p is not None and p.caught_up_ns is None:
                p.caught_up_ns = self._now_ns
        self._isr = isr_t
        self.partition_epoch = partition_epoch
        # Proposals based on an older ISR version are either applied now or can never apply.
        self._pending = {
            r: pend for r, pend in self._pending.items()
            if pend.change.partition_epoch >= partition_epoch
        }
        self._recount()
        self._update_hw()
        return True

    def tick(self, now_ns: int) -> list[IsrChange]:
        """ISR proposals due at ``now_ns`` (new ones and re-sends of unanswered ones)."""
        self._advance_time(now_ns)
        out: list[IsrChange] = []
        for r, p in self._progress.items():
            pend = self._pending.get(r)
            if pend is not None:
                if now_ns - pend.sent_ns >= self.proposal_retry_ns:
                    pend.sent_ns = now_ns
                    out.append(pend.change)
                continue
            if r in self._isr:
                if p.caught_up_ns is None or now_ns - p.caught_up_ns > self.lag_ns_max:
                    out.append(self._propose(IsrChangeKind.SHRINK, r, now_ns))
            elif self._in_sync(p, now_ns):
                out.append(self._propose(IsrChangeKind.EXPAND, r, now_ns))
        return out

    def answer_epoch_request(self, req: EpochRequest, epochs: EpochLookup) -> EpochResponse:
        """Answer a follower's KIP-101 request from the leader's epoch cache."""
        if req.leader_epoch != self.leader_epoch:
            return EpochResponse(self.leader_epoch, req.epoch, UNDEFINED, UNDEFINED, error=True)
        epoch, end = end_offset_for_epoch(req.epoch, epochs)
        return EpochResponse(self.leader_epoch, req.epoch, epoch, end)

    def statistics(self) -> dict[str, int]:
        return {
            "leo": self._leo,
            "hw": self._hw,
            "isr": len(self._isr),
            "maximal_isr": 1 + len(self._counted),
            "pending_proposals": len(self._pending),
        }

    # ----- internals -----

    def _advance_time(self, now_ns: int) -> None:
        assert now_ns >= self._now_ns, (now_ns, self._now_ns)  # time values never go back
        self._now_ns = now_ns

    def _in_sync(self, p: ReplicaProgress, now_ns: int) -> bool:
        return (
            p.caught_up_ns is not None
            and now_ns - p.caught_up_ns <= self.lag_ns_max
            and p.leo >= self._hw + 1
            and p.leo >= self.epoch_start_offset
        )

    def _propose(self, kind: IsrChangeKind, replica: str, now_ns: int) -> IsrChange:
        change = IsrChange(kind, replica, self.leader_id, self.leader_epoch, self.partition_epoch)
        self._pending[replica] = _Pending(change, now_ns)
        if kind is IsrChangeKind.EXPAND:
            self._recount()  # counts for the HW from now on (maximal ISR)
        return change

    def _recount(self) -> None:
        adding = {r for r, p in self._pending.items() if p.change.kind is IsrChangeKind.EXPAND}
        self._counted = tuple(
            r for r in self.replicas if r != self.leader_id and (r in self._isr or r in adding)
        )

    def _update_hw(self) -> None:
        if len(self._isr) < self.min_isr:
            return
        low = self._leo
        for r in self._counted:
            leo = self._progress[r].leo
            if leo == UNDEFINED:
                return
            if leo < low:
                low = leo
        candidate = low - 1
        if candidate > self._hw:
            self._hw = candidate
        assert self._hw <= self._leo - 1, (self._hw, self._leo)


def end_offset_for_epoch(epoch: int, epoch_cache: EpochLookup) -> tuple[int, int]:
    """(largest epoch <= ``epoch`` the leader knows, where it ends) for a follower's KIP-101
    request; (-1, -1) when the leader knows no such epoch. Same semantics as
    ``lb.storage.epochs.LeaderEpochCache.end_offset_for``: the end of the latest epoch is the
    LEO, of an older one the start of the next."""
    if epoch < 0:
        return UNDEFINED, UNDEFINED
    return epoch_cache.end_offset_for(epoch)
