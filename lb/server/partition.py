"""One stream partition on this server: its commit log and the tasks of its role.

Leader pipeline, per batch (design.md: per batch, never per message, on every hot path)::

    NATS subscription (asyncio callback) --offer--> IngestChannel (bounded)
        --receive_batch--> writer task: parse envelopes, check OCC and size,
            one append (one write call), fsync per policy (in a worker thread),
            advance the HW, wake subscribers, publish acks (one asyncio hop per batch)

Subscribers (gRPC handlers on the asyncio side) read committed records synchronously from the
log and wait on :class:`~lb.server.bridge.AioNotifier` for the HW to move: no hop at all.

The replication parts (followers, ISR, KIP-101 truncation) plug in here: the HW rule is
"min over the ISR of what each replica has", which for an ISR of one is the leader's own
ackable offset.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio_asyncio
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from lb import envelope
from lb._proto.lbinternal import PropagatedRequest
from lb.codec import AckEncoder, AckError, AckPolicy
from lb.metadata import propagation as prop
from lb.metadata.errors import MetadataError
from lb.metadata.model import Partition as PartitionMeta
from lb.metadata.model import Stream
from lb.server.bridge import AioNotifier, IngestChannel
from lb.server.replication import (
    FollowerReplication,
    LeaderReplication,
    encode_notify,
    notify_subject,
)
from lb.server.stall import CONFIRM_TIMEOUT_S, AckGate, StallWatch
from lb.storage import CleanReport, CommitLog, FsyncPolicy, LogOptions, Record

log = logging.getLogger("lb.partition")

MetadataRequest = Callable[[PropagatedRequest, float | None], Awaitable[None]]
"""``controller.request`` (asyncio): executes a metadata request on the controller."""
LocalAcks = Callable[[str, bytes, str, int], bool]
"""Delivers an ack (inbox, envelope, correlation id, ack error) to an inbox of this server
directly, so the receiver need not decode it; False if the inbox is not ours."""
AckOut = tuple[str, bytes, str, int]
"""An ack to send: inbox, envelope bytes, correlation id, ack error."""

INGEST_CAPACITY = 8192
INGEST_BYTES_MAX = 64 * 1024 * 1024
WRITE_BATCH_BYTES_MAX = 8 * 1024 * 1024
AUTO_PAUSE_REQUEST_TIMEOUT_S = 5.0
RELEASED_ACK_BATCHES_MAX = 1024
HW_CHECKPOINT_INTERVAL_S = 5.0
PENDING_ACKS_MAX = 100_000
MS = 1_000_000


class PartitionClosed(Exception):
    """Why a partition stopped serving; subscribers end with this status (SUB-10)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # a grpclib Status name
        self.message = message


DELETED = PartitionClosed("NOT_FOUND", "commit log was deleted")
PAUSED = PartitionClosed("FAILED_PRECONDITION", "commit log was closed")
CLOSED = PartitionClosed("INTERNAL", "commit log was closed")
NOT_LEADER = PartitionClosed(
    "FAILED_PRECONDITION", "partition leader changed; refresh metadata and resubscribe"
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Server-wide settings a partition needs (from the frozen Config)."""

    server_id: str
    namespace: str
    data_dir: Path
    batch_messages_max: int
    batch_time_ns_max: int
    replication_bytes_max: int
    min_insync_replicas: int
    stream_defaults: dict[str, Any]
    replica_lag_ns_max: int = 15_000_000_000
    replica_leader_timeout_ns: int = 15_000_000_000
    replica_idle_wait_ns: int = 10_000_000_000
    replica_fetch_timeout_ns: int = 3_000_000_000


@dataclass(slots=True)
class EventTimes:
    """First and latest time (ns) of an event kind, local to this server (PMETA-3)."""

    first_ns: int = 0
    latest_ns: int = 0

    def mark(self, now_ns: int) -> None:
        if not self.first_ns:
            self.first_ns = now_ns
        self.latest_ns = now_ns


@dataclass(slots=True)
class PartitionEvents:
    """A partition's event timestamps on this server (PMETA-3).

    Owned by the partition manager rather than the runtime, so that they survive the
    runtime's restart on pause/resume (the pause times are only visible after a resume).
    """

    messages_received: EventTimes = field(default_factory=EventTimes)
    pause: EventTimes = field(default_factory=EventTimes)
    readonly: EventTimes = field(default_factory=EventTimes)


@dataclass(slots=True)
class _PendingAck:
    offset: int
    message: envelope.IngestMessage
    reception_ns: int


def log_options(stream: Stream, settings: Settings) -> LogOptions:
    """Commit-log options: per-stream overrides (ms) over the server's ``streams.*`` defaults."""
    d = settings.stream_defaults
    c = stream.config

    def ms(value: int | None, default_ns: int) -> int:
        return default_ns if value is None else value * MS

    retention_age = ms(c.retention_max_age_ms, d["retention_age_ns_max"])
    segment_age = ms(c.segment_max_age_ms, d["segment_age_ns_max"] or retention_age)
    policy = d["fsync_policy"]
    if policy == "batch":
        fsync = FsyncPolicy.batch()
    elif policy == "interval":
        fsync = FsyncPolicy.interval(d["fsync_interval_ns"])
    elif policy == "messages":
        fsync = FsyncPolicy.every_messages(d["fsync_messages"])
    else:
        fsync = FsyncPolicy.never()
    return LogOptions(
        segment_bytes_max=c.segment_max_bytes or d["segment_bytes_max"],
        segment_age_ns_max=segment_age,
        retention_bytes_max=(
            d["retention_bytes_max"] if c.retention_max_bytes is None else c.retention_max_bytes
        ),
        retention_messages_max=(
            d["retention_messages_max"]
            if c.retention_max_messages is None
            else c.retention_max_messages
        ),
        retention_age_ns_max=retention_age,
        compact_enabled=d["compact_enabled"] if c.compact_enabled is None else c.compact_enabled,
        cleaner_interval_ns=ms(c.cleaner_interval_ms, d["cleaner_interval_ns"]),
        fsync=fsync,
    )


class PartitionRuntime:
    """This server's replica of one partition. Created by the partition manager."""

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        meta: PartitionMeta,
        nats: NatsClient,
        events: PartitionEvents | None = None,
        metadata_request: MetadataRequest | None = None,
        local_acks: LocalAcks | None = None,
        stall_watch: StallWatch | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.meta = meta
        self.nats = nats
        self.metadata_request = metadata_request
        self.local_acks = local_acks
        self.stall_watch = stall_watch
        self.ack_gate: AckGate[AckOut] | None = None
        """Holds acks after this server stalled, until the controller confirms we still lead."""
        self.path = settings.data_dir / "streams" / stream.name / str(meta.id)
        self.log: CommitLog | None = None
        self.notifier = AioNotifier()
        self.closed: PartitionClosed | None = None
        self.readonly = meta.readonly
        self.subscribers = 0
        self.listening = False  # the leader's NATS subscription is in place
        self.events = events if events is not None else PartitionEvents()
        self.messages_received = self.events.messages_received
        self.pause_times = self.events.pause
        self.readonly_times = self.events.readonly
        self.opened = trio.Event()
        self._ingest: IngestChannel[tuple[bytes, str, str]] = IngestChannel(
            INGEST_CAPACITY, INGEST_BYTES_MAX
        )
        # Serialises what must not overlap a sync running in a worker thread: appends (the
        # writer holds it across append + sync) and cleaner steps.
        self.io_lock = trio.Lock()
        self._last_received = time.monotonic()  # auto-pause idleness (PAUSE-9)
        self._pending_all: deque[_PendingAck] = deque()
        # ALL acks released by commit_to (the HW moved outside the writer): sent by a task.
        self._released_send, self._released_recv = trio.open_memory_channel[list[AckOut]](
            RELEASED_ACK_BATCHES_MAX
        )
        self._options = log_options(stream, settings)
        self._occ = bool(stream.config.optimistic_concurrency_control)
        self.leader_repl: LeaderReplication | None = None
        self.follower_repl: FollowerReplication | None = None
        self.led_before = False
        """Set by the manager when this process already led this leader epoch (a runtime
        restart, e.g. after a resume), as opposed to a leadership left by a previous process."""
        self._ack_after_sync = self._options.fsync.kind == "batch"
        self._acks = AckEncoder(stream.name, stream.subject, _ACK_ENVELOPE_HEADER)
        self._raw_bodies = envelope.RawBodyEncoder()

    # -- facts for the API (synchronous; callable from asyncio handlers) -------------------

    @property
    def is_leader(self) -> bool:
        return self.meta.leader == self.settings.server_id

    @property
    def subject(self) -> str:
        return self.stream.partition_subject(self.meta.id)

    def hw(self) -> int:
        return self.log.hw if self.log is not None else -1

    def newest_offset(self) -> int:
        return self.log.newest_offset if self.log is not None else -1

    def oldest_offset(self) -> int:
        return self.log.oldest_offset if self.log is not None else -1

    def read_committed(self, offset: int, max_bytes: int) -> list[Record]:
        """Records from ``offset`` up to the HW, at most ``max_bytes`` (at least one record)."""
        if self.closed is not None:
            raise self.closed
        lg = self.log
        if lg is None or offset > lg.hw:
            return []
        return lg.read_records(offset, max_bytes, max_offset=lg.hw)

    def offset_for_timestamp(self, ts_ns: int) -> int | None:
        return self.log.offset_for_timestamp(ts_ns) if self.log is not None else None

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Open the log and serve the partition's role until cancelled."""
        try:
            self.log = await trio.to_thread.run_sync(CommitLog.open, self.path, self._options)
            report = self.log.recovery_report
            if not report.clean:
                log.warning("%s: repaired the log on open: %s", self.name, report)
            self.opened.set()
            self.notifier.notify()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._checkpoint_loop)
                nursery.start_soon(self._cleaner_loop)
                if self.is_leader:
                    if self._leadership_left_by_a_previous_process():
                        await self._hand_over_restarted_leadership()
                        return
                    self._become_leader()
                    if self.leader_repl is not None:
                        nursery.start_soon(self.leader_repl.run)
                    if self.ack_gate is not None:
                        nursery.start_soon(self.ack_gate.run)
                    nursery.start_soon(self._writer)
                    nursery.start_soon(self._ack_sender)
                    if self.auto_pause_ns > 0:
                        nursery.start_soon(self._auto_pause_loop)
                    await self._subscribe_nats(nursery)
                else:
                    self.follower_repl = FollowerReplication(
                        self,
                        self._require_metadata_request(),
                        fetch_timeout_s=self.settings.replica_fetch_timeout_ns / 1e9,
                        idle_wait_ns_max=self.settings.replica_idle_wait_ns,
                        leader_timeout_ns=self.settings.replica_leader_timeout_ns,
                    )
                    await self.follower_repl.run()
        finally:
            gate = self.ack_gate
            if gate is not None and gate.held:
                log.info(
                    "%s: dropping %d acks held for a leadership check: no longer leading",
                    self.name,
                    gate.held,
                )
            with trio.CancelScope(shield=True):
                # Readers see no log from here on; the close (an fsync) runs off the loop.
                lg, self.log = self.log, None
                if lg is not None:
                    await trio.to_thread.run_sync(self._close_log, lg)

    @property
    def name(self) -> str:
        return f"{self.stream.name}/{self.meta.id}"

    def _become_leader(self) -> None:
        lg = self.log
        assert lg is not None
        # KIP-101: this leader epoch starts at our log end.
        lg.epochs.assign(self.meta.leader_epoch, lg.next_offset)
        if len(self.meta.replicas) > 1:
            self.leader_repl = LeaderReplication(
                self,
                self._require_metadata_request(),
                self.settings.replica_lag_ns_max,
                self._min_isr(),
            )
            if self.stall_watch is not None:
                # Only a replicated partition can be failed over while this server stalls.
                self.ack_gate = AckGate(
                    self.name,
                    self.stall_watch,
                    self._confirm_leadership,
                    self._deliver_acks,
                    PENDING_ACKS_MAX,
                )
        # A one-replica ISR commits what the leader has; with followers the HW moves only as
        # they fetch (partition replication).
        self._advance_hw()

    def _min_isr(self) -> int:
        return self.stream.config.min_isr or self.settings.min_insync_replicas

    def _require_metadata_request(self) -> MetadataRequest:
        if self.metadata_request is None:
            raise RuntimeError("partition replication needs the metadata controller")
        return self.metadata_request

    def _leadership_left_by_a_previous_process(self) -> bool:
        """We are the recorded leader, our log says we led this epoch, and not in this process.

        A previous process of this server led the epoch; it may have lost an unsynced tail that
        followers hold under the same epoch, so this process must not lead it again.
        """
        lg = self.log
        assert lg is not None
        return (
            len(self.meta.replicas) > 1
            and not self.led_before
            and lg.epochs.latest_epoch == self.meta.leader_epoch
        )

    async def _hand_over_restarted_leadership(self) -> None:
        request = self._require_metadata_request()
        log.info(
            "%s: restarted as the recorded leader of epoch %d; asking for a new leader",
            self.name,
            self.meta.leader_epoch,
        )
        req = prop.leader_restarted_request(
            self.stream.name, self.meta.id, self.settings.server_id, self.meta.leader_epoch
        )
        while True:
            try:
                await trio_asyncio.aio_as_trio(request)(req, 5.0)
            except MetadataError as err:
                log.info("%s: leader hand-over: %s", self.name, err)
            # The new leader epoch restarts this runtime; until then, retry slowly.
            await trio.sleep(1.0)

    async def _confirm_leadership(self) -> None:
        """Raises MetadataError FAILED_PRECONDITION if another replica leads now."""
        req = prop.confirm_leader_request(
            self.stream.name, self.meta.id, self.settings.server_id, self.meta.leader_epoch
        )
        await trio_asyncio.aio_as_trio(self._require_metadata_request())(req, CONFIRM_TIMEOUT_S)

    def on_meta_changed(self) -> None:
        """The manager updated ``meta`` in place (same leader epoch): e.g. a new ISR."""
        if self.leader_repl is not None:
            self.leader_repl.apply_isr(self.meta.isr, self.meta.epoch)

    def stop(self, reason: PartitionClosed) -> None:
        """Mark the partition closed for subscribers (the manager cancels its tasks)."""
        self.closed = reason
        self.notifier.close(reason)
        self._ingest.close()

    def _close_log(self, lg: CommitLog) -> None:
        try:
            if self.closed is not DELETED:
                lg.checkpoint_hw()
            lg.close()
        except Exception as exc:  # closing must not mask the reason we are stopping
            log.warning("%s: closing the log: %s", self.name, exc)

    # -- leader: ingest ---------------------------------------------------------------------

    async def _subscribe_nats(self, nursery: trio.Nursery) -> None:
        offer = self._ingest.offer

        async def on_msg(msg: Msg) -> None:
            data = msg.data
            await offer((data, msg.subject, msg.reply), len(data))

        queue = self.stream.group or ""
        sub = await trio_asyncio.aio_as_trio(self._subscribe_and_flush)(queue, on_msg)
        self.listening = True
        log.info("%s: leading, listening on %s", self.name, self.subject)
        try:
            await trio.sleep_forever()
        finally:
            # The connection may be closing already.
            with trio.CancelScope(shield=True), trio.move_on_after(1), suppress(Exception):
                await trio_asyncio.aio_as_trio(sub.unsubscribe)()

    async def _subscribe_and_flush(self, queue: str, cb: Callable[[Msg], Awaitable[None]]) -> Any:
        sub = await self.nats.subscribe(
            self.subject, queue=queue, cb=cb, pending_msgs_limit=INGEST_CAPACITY * 8
        )
        # Once the NATS server has the subscription, publishes from any connection reach us.
        await self.nats.flush(timeout=5)
        return sub

    async def _writer(self) -> None:
        """Batches from the ingest channel: at most batch.max.messages and
        WRITE_BATCH_BYTES_MAX per append, waiting up to batch.max.time to fill one (PART-6)."""
        settings = self.settings
        batch_max = settings.batch_messages_max
        wait_s = settings.batch_time_ns_max / 1e9
        ingest = self._ingest
        while True:
            try:
                batch = await self._receive_or_sync(batch_max)
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            if batch is None:
                continue
            closed = False
            if wait_s > 0 and len(batch) < batch_max:
                size = _batch_bytes(batch)
                with trio.move_on_after(wait_s):
                    while len(batch) < batch_max and size < WRITE_BATCH_BYTES_MAX:
                        try:
                            more = await ingest.receive_batch(batch_max - len(batch))
                        except (trio.EndOfChannel, trio.ClosedResourceError):
                            closed = True
                            break
                        batch.extend(more)
                        size += _batch_bytes(more)
            start = 0
            while start < len(batch):
                end, size = start, 0
                while end < len(batch) and (end == start or size < WRITE_BATCH_BYTES_MAX):
                    size += len(batch[end][0])
                    end += 1
                await self._write_batch(batch[start:end])
                start = end
            if closed:
                return

    async def _receive_or_sync(self, batch_max: int) -> list[tuple[bytes, str, str]] | None:
        """The next batch; or None after running a sync that the interval fsync policy made
        due while no message arrived (otherwise an idle partition would never sync)."""
        lg = self.log
        assert lg is not None
        deadline_ns = lg.sync_deadline_ns
        if deadline_ns is None:
            return await self._ingest.receive_batch(batch_max)
        with trio.move_on_after(max(0.0, (deadline_ns - time.time_ns()) / 1e9)):
            return await self._ingest.receive_batch(batch_max)
        if lg.sync_due(time.time_ns()):
            async with self.io_lock:
                await trio.to_thread.run_sync(lg.sync)
            if self._ack_after_sync:
                self._advance_hw()
        return None

    async def _write_batch(self, batch: list[tuple[bytes, str, str]]) -> None:
        lg = self.log
        assert lg is not None
        now_ns = time.time_ns()
        self.messages_received.mark(now_ns)
        self._last_received = time.monotonic()
        if self.readonly:
            return  # RO-3: raw NATS messages to a readonly partition are dropped, no ack
        size_max = self.settings.replication_bytes_max
        parse = envelope.parse_published
        bodies: list[bytes] = []
        acks: list[tuple[int, envelope.IngestMessage]] = []  # (index in bodies, message)
        nacks: list[tuple[envelope.IngestMessage, int]] = []
        next_offset = lg.next_offset
        raw_body = self._raw_bodies.body
        magic = envelope.MAGIC
        occ = self._occ  # OCC rejects raw data too (expected offset 0, OCC-2): general path
        for data, subject, reply in batch:
            if not occ and data[:4] != magic and len(data) <= size_max:
                bodies.append(raw_body(data, subject, reply))  # plain NATS: no ack, no checks
                next_offset += 1
                continue
            m = parse(data, subject, reply)
            if len(data) > size_max:
                nacks.append((m, AckError.TOO_LARGE))
                continue
            if self._occ and m.expected_offset != -1 and m.expected_offset != next_offset:
                nacks.append((m, AckError.INCORRECT_OFFSET))
                continue
            if m.ack_inbox and m.ack_policy != AckPolicy.NONE:
                acks.append((len(bodies), m))
            bodies.append(m.encode_body())
            next_offset += 1
        out: list[AckOut] = []
        if bodies:
            async with self.io_lock:
                result = lg.append_bodies(bodies, now_ns, now_ns, self.meta.leader_epoch)
                if result.sync_due:
                    await trio.to_thread.run_sync(lg.sync)
            if self.leader_repl is not None:
                idle = self.leader_repl.after_append()
                if idle:
                    await self._notify_followers(idle)
            first = result.first_offset
            commit_ns = time.time_ns() if acks else 0
            ack_bytes = self._ack_bytes
            pending = self._pending_all
            for i, m in acks:
                offset = first + i
                if m.ack_policy == AckPolicy.ALL:
                    if len(pending) < PENDING_ACKS_MAX:
                        pending.append(_PendingAck(offset, m, now_ns))
                    else:
                        log.warning("%s: too many pending ALL acks; dropping one", self.name)
                else:
                    out.append(ack_bytes(offset, m, now_ns, commit_ns))
            self._advance_hw()
            out.extend(self._release_committed())
        for m, error in nacks:
            if m.ack_inbox:  # PUBA-7: error acks go out whenever there is an inbox
                out.append(self._ack_bytes(-1, m, now_ns, time.time_ns(), error))
        await self._send_acks(out)

    async def _notify_followers(self, followers: list[str]) -> None:
        """Wake idle followers: there is new data (one NATS hop for the batch)."""
        ns = self.settings.namespace
        payload = encode_notify(self.stream.name, self.meta.id)
        await trio_asyncio.aio_as_trio(self._publish_raw)(
            [(notify_subject(ns, f), payload) for f in followers]
        )

    async def _publish_raw(self, out: list[tuple[str, bytes]]) -> None:
        for subject, data in out:
            await self.nats.publish(subject, data)

    async def _send_acks(self, out: list[AckOut]) -> None:
        gate = self.ack_gate
        if gate is not None:
            out = gate.admit(out)
        if out:
            await self._deliver_acks(out)

    async def _deliver_acks(self, out: list[AckOut]) -> None:
        """Acks to this server's own inboxes go straight to their waiters; the rest go out on
        NATS with one asyncio hop for the whole batch."""
        local = self.local_acks
        if local is not None:
            out = [item for item in out if not local(*item)]
        if out:
            await trio_asyncio.aio_as_trio(self._publish_all)(out)

    def _ackable_offset(self) -> int:
        lg = self.log
        assert lg is not None
        return lg.durable_offset if self._ack_after_sync else lg.newest_offset

    def _advance_hw(self) -> None:
        """HW = min over the ISR of what each member has. Alone in the ISR: our own."""
        lg = self.log
        assert lg is not None
        repl = self.leader_repl
        if repl is not None:
            hw = repl.state.high_watermark
            if self._ack_after_sync:
                hw = min(hw, lg.durable_offset)  # group commit: only what is fsynced counts
            if hw > lg.hw:
                lg.set_hw(hw)
                self.notifier.notify()
            return
        isr = self.meta.isr
        if len(isr) < self._min_isr():
            return  # REPL-5: below min ISR nothing commits
        if len(isr) == 1 and isr[0] == self.settings.server_id:
            new_hw = self._ackable_offset()
            if new_hw > lg.hw:
                lg.set_hw(new_hw)
                self.notifier.notify()

    def commit_to(self, hw: int) -> None:
        """Raise the HW to ``hw`` (replication decided the ISR has it): wake subscribers and
        release the ALL acks it covers. Synchronous: callable from Trio or asyncio code."""
        lg = self.log
        if lg is None or hw <= lg.hw:
            return
        assert hw <= lg.newest_offset, (hw, lg.newest_offset)  # HW <= LEO - 1
        lg.set_hw(hw)
        self.notifier.notify()
        out = self._release_committed()
        if out:
            try:
                self._released_send.send_nowait(out)
            except trio.WouldBlock:
                log.warning("%s: ack sender behind; dropping %d acks", self.name, len(out))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass  # stopping

    async def commit_to_async(self, hw: int) -> None:
        """:meth:`commit_to` for asyncio callers that prefer to await."""
        self.commit_to(hw)

    async def _ack_sender(self) -> None:
        async for out in self._released_recv:
            batch = list(out)
            while len(batch) < PENDING_ACKS_MAX:
                try:
                    batch.extend(self._released_recv.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self._send_acks(batch)

    def _release_committed(self) -> list[AckOut]:
        hw = self.log.hw if self.log is not None else -1
        out: list[AckOut] = []
        pending = self._pending_all
        if not pending or pending[0].offset > hw:
            return out
        commit_ns = time.time_ns()
        ack_bytes = self._ack_bytes
        while pending and pending[0].offset <= hw:
            p = pending.popleft()
            out.append(ack_bytes(p.offset, p.message, p.reception_ns, commit_ns))
        return out

    def _ack_bytes(
        self,
        offset: int,
        m: envelope.IngestMessage,
        reception_ns: int,
        commit_ns: int,
        error: int = AckError.OK,
    ) -> AckOut:
        """The ack envelope for ``m`` (ACK-2). ``commit_ns`` is read once per batch of acks:
        the acks of one batch are committed together."""
        error = int(error)
        if error == AckError.TOO_LARGE:
            commit_ns = 0  # ACK-3
        data = self._acks.encode(
            m.subject,
            offset if offset >= 0 else 0,
            m.ack_inbox,
            m.correlation_id,
            m.ack_policy,
            reception_ns,
            commit_ns,
            error,
        )
        return m.ack_inbox, data, m.correlation_id, error

    async def _publish_all(self, out: list[AckOut]) -> None:
        publish = self.nats.publish
        for subject, data, _, _ in out:
            await publish(subject, data)

    # -- auto-pause (PAUSE-9) -----------------------------------------------------------------

    @property
    def auto_pause_ns(self) -> int:
        """Idle time after which the leader pauses the partition; 0 disables auto-pause."""
        ms_value = self.stream.config.auto_pause_time_ms
        if ms_value is not None:
            return max(0, ms_value) * MS
        return int(self.settings.stream_defaults.get("auto_pause_time_ns") or 0)

    @property
    def auto_pause_disable_if_subscribers(self) -> bool:
        value = self.stream.config.auto_pause_disable_if_subscribers
        if value is not None:
            return value
        return bool(self.settings.stream_defaults.get("auto_pause_disable_if_subscribers"))

    async def _auto_pause_loop(self) -> None:
        """Pause the partition through the controller once it has received nothing for the
        auto-pause time (a never-written partition after one interval), unless subscribers
        are attached and auto.pause.disable.if.subscribers is set."""
        interval_s = self.auto_pause_ns / 1e9
        self._last_received = time.monotonic()
        while True:
            idle_s = time.monotonic() - self._last_received
            if idle_s < interval_s:
                await trio.sleep(interval_s - idle_s)
                continue
            if self.auto_pause_disable_if_subscribers and self.subscribers > 0:
                self._last_received = time.monotonic()  # look again one interval later
                continue
            if await self._request_pause():
                # The pause's metadata effect stops this runtime; until then, stay quiet.
                await trio.sleep_forever()
            self._last_received = time.monotonic()  # failed: try again one interval later

    async def _request_pause(self) -> bool:
        if self.metadata_request is None:
            log.warning("%s: cannot auto-pause: no metadata requester", self.name)
            return False
        request = prop.pause_stream_request(self.stream.name, [self.meta.id], False)
        log.info("%s: idle for %.3fs; auto-pausing", self.name, self.auto_pause_ns / 1e9)
        try:
            await trio_asyncio.aio_as_trio(self.metadata_request)(
                request, AUTO_PAUSE_REQUEST_TIMEOUT_S
            )
        except Exception as exc:  # a metadata error or no leader: retry later
            log.warning("%s: auto-pause failed: %s", self.name, exc)
            return False
        return True

    # -- chores -----------------------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        last = -2
        while True:
            await trio.sleep(HW_CHECKPOINT_INTERVAL_S)
            lg = self.log
            if lg is not None and lg.hw != last:
                last = lg.hw
                await trio.to_thread.run_sync(lg.checkpoint_hw)

    async def _cleaner_loop(self) -> None:
        interval_s = max(1.0, self._options.cleaner_interval_ns / 1e9)
        while True:
            await trio.sleep(interval_s)
            lg = self.log
            if lg is None:
                return
            report = CleanReport()
            steps = lg.clean_steps(time.time_ns(), report)
            while True:
                # One segment per step, never during a sync; appends interleave.
                async with self.io_lock:
                    if next(steps, _DONE) is _DONE:
                        break
                await trio.sleep(0)
            if report.deleted_segments or report.compacted_segments:
                log.info("%s: cleaner: %s", self.name, report)
                self.notifier.notify()


_DONE = object()


def _batch_bytes(batch: list[tuple[bytes, str, str]]) -> int:
    return sum(len(item[0]) for item in batch)


_ACK_ENVELOPE_HEADER = envelope.encode_envelope(envelope.MsgType.ACK, b"")
"""What :func:`lb.envelope.encode_ack` puts before the ``Ack`` (HeaderLen 8, no CRC)."""
