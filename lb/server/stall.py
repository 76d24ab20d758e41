"""Notice when this process stopped running, and keep a deposed leader from acking.

A partition leader that was frozen for a while (SIGSTOP, a paused VM, heavy swapping, a
blocked event loop) may have been replaced while it could not answer: its followers stopped
hearing from it, reported it, and the controller elected another leader in a new epoch. On
waking it still believes it leads, and the NATS messages that queued up for it meanwhile are
appended and acked at once, before the metadata change that deposed it is applied. Those are
acks for writes that the new leader's log overwrites: Kafka's ``acks=1`` has the same window.

lb closes it for stalls. :class:`StallWatch` notices that the process did not run for longer
than a threshold (well below the leader timeout, so no failover can happen unnoticed); after
that, each replicated partition leader holds its acks in an :class:`AckGate` until the
controller confirms, through the Raft log, that it still leads its epoch. If it does, the held
acks go out in order; if it was deposed, they are dropped: their publishers time out instead
of being told that a write which is about to be truncated is safe.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

from lb.metadata.errors import ErrorCode, MetadataError

log = logging.getLogger("lb.stall")

T = TypeVar("T")

THRESHOLD_S_MAX = 1.0
THRESHOLD_S_MIN = 0.1
CONFIRM_TIMEOUT_S = 5.0
CONFIRM_RETRY_S = 0.2
RECENT_STALL_THRESHOLDS = 10


def stall_threshold_s(leader_timeout_ns: int) -> float:
    """Half the replica leader timeout (a shorter stall cannot have let followers report the
    leader), at most a second, at least 100 ms."""
    return max(THRESHOLD_S_MIN, min(THRESHOLD_S_MAX, leader_timeout_ns / 2e9))


class StallWatch:
    """Counts the times the process did not run for ``threshold_s`` or longer.

    :meth:`check` is synchronous and cheap, and any task may call it: the first task to run
    after a stall sees the gap, whether or not the watch's own ticker ran before it.
    """

    def __init__(self, threshold_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        assert threshold_s > 0
        self.threshold_s = threshold_s
        self._clock = clock
        self.generation = 0
        """Bumped once per stall noticed."""
        self.longest_s = 0.0
        self._last = clock()
        self._last_stall_end: float | None = None

    def check(self) -> int:
        """The stall generation now (bumped first if the process has just woken up)."""
        now = self._clock()
        gap = now - self._last
        self._last = now
        if gap >= self.threshold_s:
            self.generation += 1
            self._last_stall_end = now
            self.longest_s = max(self.longest_s, gap)
            log.warning(
                "this server did not run for %.2fs; its partition leaders confirm that they "
                "still lead before acking again",
                gap,
            )
        return self.generation

    def stalled_recently(self) -> bool:
        """A stall ended less than ``RECENT_STALL_THRESHOLDS`` thresholds ago: metadata that
        made this server a leader just now may be what it applied while catching up."""
        self.check()
        end = self._last_stall_end
        return end is not None and self._clock() - end < RECENT_STALL_THRESHOLDS * self.threshold_s

    async def run(self) -> None:
        """Tick often enough that a running process never looks stalled."""
        while True:
            await trio.sleep(self.threshold_s / 4)
            self.check()


Confirm = Callable[[], Awaitable[None]]
"""Asks the controller whether this replica still leads its epoch: returns if it does, raises
:class:`MetadataError` FAILED_PRECONDITION if it was deposed, anything else if no answer."""


class AckGate(Generic[T]):
    """Acks of one partition leader pass through here (see the module docstring).

    Bounded: at most ``held_max`` acks wait for a confirmation; beyond that the oldest are
    dropped (their publishers time out, as they would if the leader had died).
    """

    def __init__(
        self,
        name: str,
        watch: StallWatch,
        confirm: Confirm,
        send: Callable[[list[T]], Awaitable[None]],
        held_max: int,
    ) -> None:
        self.name = name
        self._watch = watch
        self._confirm = confirm
        self._send = send
        self._held: deque[T] = deque(maxlen=held_max)
        # A leadership taken up right after a stall is confirmed before its first ack too.
        self._confirmed = -1 if watch.stalled_recently() else watch.generation
        self._wanted = trio.Event()
        self.deposed = False
        """Set once the controller said another replica leads now: nothing is acked again."""
        self.dropped = 0

    def admit(self, out: list[T]) -> list[T]:
        """The acks that may go out now; the rest wait for :meth:`run` to confirm."""
        if self.deposed:
            self.dropped += len(out)
            return []
        if self._watch.check() == self._confirmed and not self._held:
            return out
        overflow = len(self._held) + len(out) - (self._held.maxlen or 0)
        if overflow > 0:
            self.dropped += overflow
            log.warning(
                "%s: too many acks wait for a leadership check; dropping %d", self.name, overflow
            )
        self._held.extend(out)
        self._wanted.set()
        return []

    @property
    def held(self) -> int:
        return len(self._held)

    async def run(self) -> None:
        """Confirm leadership whenever acks wait; release or drop them."""
        while not self.deposed:
            await self._wanted.wait()
            self._wanted = trio.Event()
            generation = self._watch.generation
            if generation != self._confirmed and not await self._confirmed_now():
                return
            self._confirmed = generation
            while self._held and self._watch.check() == self._confirmed:
                batch = list(self._held)
                self._held.clear()
                await self._send(batch)
            if self._held:
                self._wanted.set()  # stalled again while sending: confirm again

    async def _confirmed_now(self) -> bool:
        """True once the controller confirms; False (after dropping the held acks) if this
        replica was deposed. Retries while there is no answer."""
        started = time.monotonic()
        while True:
            try:
                with trio.fail_after(CONFIRM_TIMEOUT_S):
                    await self._confirm()
            except MetadataError as err:
                if err.code is ErrorCode.FAILED_PRECONDITION:
                    self.deposed = True
                    self.dropped += len(self._held)
                    log.warning(
                        "%s: was deposed while this server stalled (%s); dropping %d acks",
                        self.name,
                        err.message,
                        len(self._held),
                    )
                    self._held.clear()
                    return False
                log.info("%s: leadership check: %s; retrying", self.name, err)
            except trio.TooSlowError:
                log.info("%s: leadership check timed out; retrying", self.name)
            except Exception as exc:  # no answer (NATS, the forwarding): ask again
                log.info("%s: leadership check failed: %r; retrying", self.name, exc)
            else:
                log.info(
                    "%s: still the leader after a stall (checked in %.3fs); releasing %d acks",
                    self.name,
                    time.monotonic() - started,
                    len(self._held),
                )
                return True
            await trio.sleep(CONFIRM_RETRY_S)
