"""Partition replication over NATS: the I/O around the pure cores in :mod:`lb.replication`.

Subjects (Liftbridge's, under the cluster namespace ``<ns>``):

- ``<ns>.<stream>.<partition>.replicate``: a follower's fetch (``ReplicationRequest``: its id,
  its LEO, the leader epoch it follows); the leader answers with its epoch, its HW and raw record
  batches from its log, at most ``replication.max.bytes`` (``ReplicationResponse``).
- ``<ns>.<stream>.<partition>.offset``: KIP-101 "where does leader epoch E end?"
  (``EpochEndOffsetRequest``), asked by a replica that becomes a follower, before it truncates.
- ``<ns>.notify.<server id>``: "partition P has new data", so an idle follower fetches at once
  instead of waiting replica.max.idle.wait.

The four messages (``protos/internal.proto``) are encoded and decoded by
:mod:`lb.replication.wire`, hand-written codecs wire-identical to betterproto's encoding: per
fetch, betterproto cost more than reading and appending the batches.

Batches travel as the leader stored them: the follower validates and appends them whole
(``CommitLog.append_raw``), never decoding a record. The leader's fetch handler runs in the
nats-py callback (asyncio) and only calls synchronous log and core methods, so a fetch costs no
asyncio/Trio hop; the follower's fetch loop is a Trio task with one hop per fetch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import trio
import trio_asyncio

from lb._proto import lbinternal as pb
from lb.metadata import propagation as prop
from lb.metadata.errors import MetadataError
from lb.metadata.failover import LeaderReport
from lb.replication import wire
from lb.replication.follower import FollowerState, Phase, TruncationBelowHighWatermark
from lb.replication.leader import LeaderState
from lb.replication.messages import (
    UNDEFINED,
    EpochResponse,
    FetchResponse,
    FetchVerdict,
    IsrChangeKind,
)
from lb.storage import batch as fmt

if TYPE_CHECKING:
    from lb.server.partition import PartitionRuntime

log = logging.getLogger("lb.replication")

MetadataRequest = Callable[[pb.PropagatedRequest, float | None], Awaitable[None]]

ISR_TICK_S_MAX = 1.0
CONTROLLER_TIMEOUT_S = 5.0


def replicate_subject(namespace: str, stream: str, partition: int) -> str:
    return f"{namespace}.{stream}.{partition}.replicate"


def offset_subject(namespace: str, stream: str, partition: int) -> str:
    return f"{namespace}.{stream}.{partition}.offset"


def notify_subject(namespace: str, server_id: str) -> str:
    return f"{namespace}.notify.{server_id}"


def encode_notify(stream: str, partition: int) -> bytes:
    return f"{stream}\n{partition}".encode()


def decode_notify(data: bytes) -> tuple[str, int] | None:
    try:
        stream, partition = data.decode().split("\n")
        return stream, int(partition)
    except ValueError:
        return None


def _now() -> int:
    """Replication time values: monotonic, so that a wall-clock step never fakes a lag."""
    return time.monotonic_ns()


class LeaderReplication:
    """The leader side of one partition for one leader epoch."""

    def __init__(
        self,
        rt: PartitionRuntime,
        request: MetadataRequest,
        lag_ns_max: int,
        min_isr: int,
    ) -> None:
        self.rt = rt
        self._request = request
        lg = rt.log
        assert lg is not None
        meta = rt.meta
        self.state = LeaderState(
            rt.settings.server_id,
            meta.leader_epoch,
            meta.replicas,
            meta.isr,
            min_isr,
            lag_ns_max,
            _now(),
            lg.next_offset,
            hw=min(lg.hw, lg.next_offset - 1),
            partition_epoch=meta.epoch,
        )
        self._tick_s = min(ISR_TICK_S_MAX, max(0.05, lag_ns_max / 4e9))

    async def run(self) -> None:
        rt = self.rt
        ns = rt.settings.namespace
        name, pid = rt.stream.name, rt.meta.id
        subs = await trio_asyncio.aio_as_trio(self._subscribe)(
            replicate_subject(ns, name, pid), offset_subject(ns, name, pid)
        )
        try:
            while True:
                await trio.sleep(self._tick_s)
                for change in self.state.tick(_now()):
                    await self._propose(change)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                for sub in subs:
                    with suppress(Exception):
                        await trio_asyncio.aio_as_trio(sub.unsubscribe)()

    async def _subscribe(self, replicate: str, offset: str) -> list[Any]:
        nats = self.rt.nats
        return [
            await nats.subscribe(replicate, cb=self._on_fetch),
            await nats.subscribe(offset, cb=self._on_epoch_request),
        ]

    async def _propose(self, change: Any) -> None:
        rt = self.rt
        build = (
            prop.shrink_isr_request
            if change.kind is IsrChangeKind.SHRINK
            else prop.expand_isr_request
        )
        req = build(
            rt.stream.name,
            rt.meta.id,
            change.replica,
            rt.settings.server_id,
            self.state.leader_epoch,
            change.partition_epoch,
        )
        log.info(
            "%s: proposing to %s %s %s the ISR",
            rt.name,
            change.kind.value,
            change.replica,
            "from" if change.kind is IsrChangeKind.SHRINK else "into",
        )
        try:
            await trio_asyncio.aio_as_trio(self._request)(req, CONTROLLER_TIMEOUT_S)
        except MetadataError as err:
            log.info("%s: ISR change for %s refused: %s", rt.name, change.replica, err)

    # -- called by the partition ------------------------------------------------------------

    def after_append(self) -> list[str]:
        """The local log grew: update the core; returns followers to notify."""
        lg = self.rt.log
        assert lg is not None
        return self.state.on_local_append(lg.next_offset)

    def apply_isr(self, isr: tuple[str, ...], partition_epoch: int) -> None:
        if self.state.apply_isr(isr, partition_epoch):
            self.rt.commit_to(self.state.high_watermark)

    # -- NATS handlers (asyncio callbacks; synchronous work only) ---------------------------

    async def _on_fetch(self, msg: Any) -> None:
        rt = self.rt
        lg = rt.log
        if not msg.reply or lg is None:
            return
        try:
            replica_id, offset, leader_epoch = wire.decode_replication_request(msg.data)
        except wire.DecodeError:
            return
        state = self.state
        verdict = state.on_fetch(replica_id, offset, _now(), leader_epoch)
        if verdict is not FetchVerdict.OK:
            await msg.respond(
                wire.encode_replication_response(state.leader_epoch, 0, 0, error=verdict.value)
            )
            return
        data = b""
        first = UNDEFINED
        if offset < lg.next_offset:
            data = lg.read_raw(offset, rt.settings.replication_bytes_max)
            if data:
                first = fmt.parse_header(data, 0).base_offset
        await msg.respond(
            wire.encode_replication_response(state.leader_epoch, state.high_watermark, first, data)
        )
        if state.high_watermark > lg.hw:
            await rt.commit_to_async(state.high_watermark)

    async def _on_epoch_request(self, msg: Any) -> None:
        lg = self.rt.log
        if not msg.reply or lg is None:
            return
        try:
            req = wire.decode_epoch_request(msg.data)
        except wire.DecodeError:
            return
        if req.leader_epoch != self.state.leader_epoch:
            answer = wire.encode_epoch_response(
                self.state.leader_epoch, -1, error="leader epoch mismatch"
            )
        else:
            epoch, end = lg.epochs.end_offset_for(req.requested_epoch)
            answer = wire.encode_epoch_response(
                self.state.leader_epoch,
                end,
                epoch=epoch,
                requested_epoch=req.requested_epoch,
                unknown=epoch == UNDEFINED,
            )
        await msg.respond(answer)


class FollowerReplication:
    """The follower side of one partition for one leader epoch (a Trio task)."""

    def __init__(
        self,
        rt: PartitionRuntime,
        request: MetadataRequest,
        *,
        fetch_timeout_s: float,
        idle_wait_ns_max: int,
        leader_timeout_ns: int,
    ) -> None:
        self.rt = rt
        self._request = request
        self._fetch_timeout_s = fetch_timeout_s
        self._leader_timeout_ns = leader_timeout_ns
        lg = rt.log
        assert lg is not None
        self.state = FollowerState(
            rt.settings.server_id,
            rt.meta.leader,
            rt.meta.leader_epoch,
            lg.next_offset,
            min(lg.hw, lg.next_offset - 1),
            _now(),
            idle_wait_ns_max=idle_wait_ns_max,
            idle_jitter_ns_max=min(idle_wait_ns_max // 5, 2_000_000_000),
        )
        self.wakeup = trio.Event()
        self._last_report_ns = 0

    def notify(self) -> None:
        """The leader said there is new data (called from the notify subscription)."""
        self.wakeup.set()

    async def run(self) -> None:
        rt = self.rt
        ns = rt.settings.namespace
        name, pid = rt.stream.name, rt.meta.id
        fetch_subject = replicate_subject(ns, name, pid)
        epoch_subject = offset_subject(ns, name, pid)
        request = trio_asyncio.aio_as_trio(rt.nats.request)
        state = self.state
        log.info("%s: following %s (epoch %d)", rt.name, rt.meta.leader, rt.meta.leader_epoch)
        while True:
            caught_up = False
            try:
                if state.phase is Phase.TRUNCATING:
                    await self._truncate(request, epoch_subject)
                    continue
                caught_up = await self._fetch(request, fetch_subject)
            except TruncationBelowHighWatermark as exc:
                log.error("%s: %s; stopping replication of this partition", rt.name, exc)
                raise
            except Exception as exc:  # timeouts, no responders, connection trouble
                log.debug("%s: fetch from %s failed: %s", rt.name, rt.meta.leader, exc)
                await self._maybe_report_leader()
                await trio.sleep(min(self._fetch_timeout_s, 0.2))
                continue
            notified = self.wakeup.is_set()
            delay_ns = state.next_fetch_delay_ns(caught_up, notified)
            if notified:
                self.wakeup = trio.Event()
            if delay_ns > 0:
                with trio.move_on_after(delay_ns / 1e9):
                    await self.wakeup.wait()
                self.wakeup = trio.Event()

    async def _truncate(self, request: Any, subject: str) -> None:
        lg = self.rt.log
        assert lg is not None
        state = self.state
        ask = state.epoch_request(lg.epochs.latest_epoch)
        reply = await request(
            subject,
            wire.encode_epoch_request(ask.replica_id, ask.leader_epoch, ask.epoch),
            timeout=self._fetch_timeout_s,
        )
        answer = wire.decode_epoch_response(reply.data)
        resp = EpochResponse(
            leader_epoch=answer.leader_epoch,
            requested_epoch=answer.requested_epoch,
            epoch=UNDEFINED if answer.unknown else answer.epoch,
            end_offset=answer.end_offset,
            error=bool(answer.error),
        )
        cut = state.truncation_point(resp, lg.epochs)
        if cut is None:
            await trio.sleep(0.05)
            return
        if cut.offset < lg.next_offset:
            log.info(
                "%s: truncating from %d to %d (KIP-101, leader epoch %d)",
                self.rt.name,
                lg.next_offset,
                cut.offset,
                state.leader_epoch,
            )
            assert cut.offset > lg.hw or cut.below_hw, "committed offsets are never truncated"
            async with self.rt.io_lock:
                lg.truncate(cut.offset)

    async def _fetch(self, request: Any, subject: str) -> bool:
        rt = self.rt
        lg = rt.log
        assert lg is not None
        state = self.state
        ask = state.next_fetch()
        reply = await request(
            subject,
            wire.encode_replication_request(ask.replica_id, ask.fetch_offset, ask.leader_epoch),
            timeout=self._fetch_timeout_s,
        )
        answer = wire.decode_replication_response(reply.data)
        data = answer.batches
        last = UNDEFINED
        if data:
            last = _last_offset(data)
        verdict = FetchVerdict(answer.error) if answer.error else None
        outcome = state.on_fetch_response(
            FetchResponse(
                leader_epoch=answer.leader_epoch,
                hw=answer.hw,
                has_batches=bool(data),
                first_offset=answer.first_offset if data else UNDEFINED,
                last_offset=last,
                error=verdict,
            ),
            _now(),
        )
        if not outcome.accepted:
            if outcome.reason:
                log.debug("%s: dropped a fetch response: %s", rt.name, outcome.reason)
            return False
        if outcome.append:
            async with rt.io_lock:  # never overlaps a sync or cleaner step in a thread
                result = lg.append_raw(data, time.time_ns(), state.leader_epoch)
                if result.sync_due:
                    await trio.to_thread.run_sync(lg.sync)
        if outcome.hw > lg.hw:
            lg.set_hw(outcome.hw)
            rt.notifier.notify()
        return outcome.caught_up

    async def _maybe_report_leader(self) -> None:
        now = _now()
        state = self.state
        if not state.leader_silent(now, self._leader_timeout_ns):
            return
        if now - self._last_report_ns < self._leader_timeout_ns // 2:
            return
        self._last_report_ns = now
        rt = self.rt
        report = LeaderReport(
            stream=rt.stream.name,
            partition=rt.meta.id,
            replica=rt.settings.server_id,
            leader=rt.meta.leader,
            leader_epoch=rt.meta.leader_epoch,
        )
        log.warning("%s: leader %s is silent; reporting it", rt.name, rt.meta.leader)
        try:
            await trio_asyncio.aio_as_trio(self._request)(
                prop.report_leader_request(report), CONTROLLER_TIMEOUT_S
            )
        except MetadataError as err:
            log.info("%s: leader report: %s", rt.name, err)


def _last_offset(data: bytes) -> int:
    """The last offset in a run of raw batches (headers only)."""
    pos = 0
    last = UNDEFINED
    while pos < len(data):
        h = fmt.parse_header(data, pos)
        last = h.last_offset
        pos += h.size
    return last
