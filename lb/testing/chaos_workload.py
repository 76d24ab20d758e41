"""The traffic of a chaos run: publishers on every path and policy, consumers, a leader poller.

Runs an asyncio loop in its own thread (the fault injector keeps the main thread and the
synchronous cluster helpers). Every publish gets a fresh payload id and is never retried, so
the checker can tell a duplicate made by the servers from one made by a client. Publishers:

- ``grpc``: unary Publish, one at a time, with a deadline (the server waits for the ack);
- ``grpc_async``: PublishAsync, a window of requests in flight on one bidi stream;
- ``nats``: Publish envelopes straight onto the partition subjects with an ack inbox.

each with AckPolicy ALL and LEADER, cycling over every partition and (for gRPC) over the
servers. Consumers read every partition with ``read_isr_replica`` from one server at a time,
move to another server now and then or when the stream breaks, and resume after the highest
offset they saw. The poller records each partition's leader and ISR when they change.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lb.testing.chaos_history import (
    ACKED,
    FAILED,
    TIMEOUT,
    ConsumerSession,
    History,
    LeaderObservation,
    PublishOp,
    decode_payload,
    encode_payload,
)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subject: str
    partitions: int


@dataclass
class WorkloadConfig:
    streams: list[StreamSpec]
    ports: dict[str, int]  # server name -> gRPC port (stable across restarts)
    nats_urls: list[str]
    publish_interval_s: float = 0.05  # pacing of each publisher
    window: int = 16  # requests in flight per pipelined publisher
    ack_timeout_s: float = 5.0
    pad_bytes: int = 64
    consumer_session_s: float = 8.0  # a consumer moves to another replica this often
    poll_interval_s: float = 0.5
    paths: tuple[str, ...] = ("grpc", "grpc_async", "nats")
    policies: tuple[str, ...] = ("ALL", "LEADER")


@dataclass
class _Shared:
    """Consumer positions, read by the main thread (ints: reads are atomic)."""

    consumed: dict[str, int] = field(default_factory=dict)  # "stream/p" -> next offset


def partition_subject(subject: str, partition: int) -> str:
    """Partition 0 listens on the stream subject, partition n on ``<subject>.<n>``."""
    return subject if partition == 0 else f"{subject}.{partition}"


class Workload:
    """Start with :meth:`start`; :meth:`stop_publishers`, then :meth:`stop`."""

    def __init__(self, history: History, cfg: WorkloadConfig, seed: int) -> None:
        self.history = history
        self.cfg = cfg
        self.rng = random.Random(seed ^ 0x5EED)
        self.shared = _Shared()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_pub: asyncio.Event | None = None
        self._stop_all: asyncio.Event | None = None
        self._ready = threading.Event()
        self._publishers_done = threading.Event()
        self._channels: dict[tuple[int, str], Any] = {}
        self.errors: list[str] = []

    # ------------------------------------------------------------------ thread control

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-workload", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("workload loop did not start")

    def _run(self) -> None:
        asyncio.run(self._main())

    def _call_soon(self, fn: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn)

    def stop_publishers(self, timeout_s: float = 30.0) -> None:
        """Stop publishing and wait until every publish in flight was answered or timed out."""
        assert self._stop_pub is not None
        self._call_soon(self._stop_pub.set)
        self._publishers_done.wait(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._thread is None:
            return
        assert self._stop_all is not None and self._stop_pub is not None
        self._call_soon(self._stop_pub.set)
        self._call_soon(self._stop_all.set)
        self._thread.join(timeout_s)
        self._thread = None

    # ------------------------------------------------------------------ main

    def _targets(self) -> Iterator[tuple[StreamSpec, int]]:
        pairs = [(s, p) for s in self.cfg.streams for p in range(s.partitions)]
        return itertools.cycle(pairs)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_pub = asyncio.Event()
        self._stop_all = asyncio.Event()
        self._ready.set()
        publishers = []
        for path in self.cfg.paths:
            for policy in self.cfg.policies:
                prefix = {"grpc": "g", "grpc_async": "a", "nats": "n"}[path] + policy[0].lower()
                fn = {"grpc": self._pub_unary, "grpc_async": self._pub_async,
                      "nats": self._pub_nats}[path]
                publishers.append(asyncio.create_task(self._guard(fn(prefix, policy))))
        others = [asyncio.create_task(self._guard(self._poll_leaders()))]
        for s in self.cfg.streams:
            for p in range(s.partitions):
                others.append(asyncio.create_task(self._guard(self._consume(s, p))))
        await asyncio.gather(*publishers)
        self._publishers_done.set()
        await self._stop_all.wait()
        for t in others:
            t.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        for ch in self._channels.values():
            ch.close()

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the harness: keep it visible in the report
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self.history.note(f"workload task crashed: {type(exc).__name__}: {exc}")

    def _servers(self) -> list[str]:
        return sorted(self.cfg.ports)

    def _stub(self, server: str) -> Any:
        """A stub on this task's own channel to ``server``: tasks never share a connection, so
        dropping a broken one never cuts another task's stream."""
        from grpclib.client import Channel

        from lb._proto.proto import ApiStub

        key = (id(asyncio.current_task()), server)
        ch = self._channels.get(key)
        if ch is None:
            ch = Channel("127.0.0.1", self.cfg.ports[server])
            self._channels[key] = ch
        return ApiStub(ch)

    def _drop_channel(self, server: str) -> None:
        ch = self._channels.pop((id(asyncio.current_task()), server), None)
        if ch is not None:
            ch.close()

    async def _pace(self) -> bool:
        """Wait one publish interval; False once publishers must stop."""
        assert self._stop_pub is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_pub.wait(), self.cfg.publish_interval_s)
        return not self._stop_pub.is_set()

    # ------------------------------------------------------------------ publishers

    async def _pub_unary(self, prefix: str, policy: str) -> None:
        from grpclib.const import Status
        from grpclib.exceptions import GRPCError

        from lb._proto.proto import AckPolicy, PublishRequest

        targets = self._targets()
        seq = 0
        ack_policy = AckPolicy.ALL if policy == "ALL" else AckPolicy.LEADER
        while await self._pace():
            stream, part = next(targets)
            server = self.rng.choice(self._servers())
            pid = f"{prefix}{seq}"
            seq += 1
            op = self.history.add_op(
                PublishOp(pid, stream.name, part, "grpc", policy, server, time.time_ns())
            )
            req = PublishRequest(stream=stream.name, partition=part, ack_policy=ack_policy,
                                 value=encode_payload(pid, self.cfg.pad_bytes),
                                 correlation_id=pid)
            try:
                resp = await asyncio.wait_for(
                    self._stub(server).publish(req, timeout=self.cfg.ack_timeout_s),
                    self.cfg.ack_timeout_s + 1,
                )
            except GRPCError as err:
                outcome = TIMEOUT if err.status is Status.DEADLINE_EXCEEDED else FAILED
                self.history.finish_op(op, outcome, time.time_ns(),
                                       error=f"{err.status.name}: {err.message}")
                continue
            except TimeoutError:
                self.history.finish_op(op, TIMEOUT, time.time_ns(), error="client timeout")
                self._drop_channel(server)
                continue
            except Exception as exc:  # connection refused/reset while servers die
                self.history.finish_op(op, FAILED, time.time_ns(), error=type(exc).__name__)
                self._drop_channel(server)
                continue
            ack = resp.ack
            if ack.ack_error:
                self.history.finish_op(op, FAILED, time.time_ns(),
                                       error=f"ackError {ack.ack_error}")
            else:
                self.history.finish_op(op, ACKED, time.time_ns(), offset=ack.offset)

    async def _pub_async(self, prefix: str, policy: str) -> None:
        from grpclib.const import Cardinality

        from lb._proto.proto import AckPolicy, PublishRequest, PublishResponse

        assert self._stop_pub is not None
        targets = self._targets()
        seq = 0
        ack_policy = AckPolicy.ALL if policy == "ALL" else AckPolicy.LEADER
        while not self._stop_pub.is_set():
            server = self.rng.choice(self._servers())
            pending: dict[str, PublishOp] = {}
            window = asyncio.Semaphore(self.cfg.window)
            released: set[str] = set()

            def release(pid: str, window: asyncio.Semaphore = window,
                        released: set[str] = released) -> None:
                if pid not in released:
                    released.add(pid)
                    window.release()

            session_end = time.monotonic() + 10.0
            try:
                ch = self._stub(server).channel
                async with ch.request("/proto.API/PublishAsync", Cardinality.STREAM_STREAM,
                                      PublishRequest, PublishResponse) as st:

                    async def receive(st: Any = st, pending: dict[str, PublishOp] = pending,
                                      release: Callable[[str], None] = release) -> None:
                        while True:
                            resp = await st.recv_message()
                            if resp is None:
                                return
                            op = pending.get(resp.correlation_id)
                            if op is None:
                                continue
                            now = time.time_ns()
                            if resp.async_error.code or resp.async_error.message:
                                self.history.finish_op(
                                    op, FAILED, now,
                                    error=f"asyncError {resp.async_error.code}: "
                                          f"{resp.async_error.message}")
                            else:
                                self.history.finish_op(op, ACKED, now, offset=resp.ack.offset)
                            release(op.pid)

                    async def expire(pending: dict[str, PublishOp] = pending,
                                     release: Callable[[str], None] = release) -> None:
                        while True:
                            await asyncio.sleep(0.25)
                            cutoff = time.time_ns() - int(self.cfg.ack_timeout_s * 1e9)
                            for op in list(pending.values()):
                                if op.outcome == "pending" and op.sent_ns < cutoff:
                                    self.history.finish_op(op, TIMEOUT, time.time_ns(),
                                                           error="no ack in time")
                                    release(op.pid)

                    await asyncio.wait_for(st.send_request(), self.cfg.ack_timeout_s)
                    rx = asyncio.create_task(receive())
                    ex = asyncio.create_task(expire())
                    try:
                        while await self._pace() and time.monotonic() < session_end:
                            if rx.done():
                                break
                            await window.acquire()
                            stream, part = next(targets)
                            pid = f"{prefix}{seq}"
                            seq += 1
                            op = self.history.add_op(PublishOp(
                                pid, stream.name, part, "grpc_async", policy, server,
                                time.time_ns()))
                            pending[pid] = op
                            await asyncio.wait_for(st.send_message(PublishRequest(
                                stream=stream.name, partition=part, ack_policy=ack_policy,
                                value=encode_payload(pid, self.cfg.pad_bytes),
                                correlation_id=pid)), self.cfg.ack_timeout_s)
                        # Let the acks in flight arrive (or time out) before closing.
                        deadline = time.monotonic() + self.cfg.ack_timeout_s + 1
                        while (not rx.done() and time.monotonic() < deadline
                               and any(o.outcome == "pending" for o in pending.values())):
                            await asyncio.sleep(0.05)
                    finally:
                        rx.cancel()
                        ex.cancel()
                        rx_result, _ = await asyncio.gather(rx, ex, return_exceptions=True)
                    if isinstance(rx_result, Exception):
                        raise rx_result
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(st.end(), 1)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(st.cancel(), 1)
            except Exception as exc:  # the stream broke: a server died or stopped
                self._drop_channel(server)
                self.history.note(f"{prefix} PublishAsync on {server} ended: {type(exc).__name__}")
                await asyncio.sleep(0.1)
            now = time.time_ns()
            for op in pending.values():
                if op.outcome == "pending":
                    self.history.finish_op(op, FAILED, now, error="stream ended before the ack")

    async def _pub_nats(self, prefix: str, policy: str) -> None:
        import nats

        from lb.envelope import decode_ack, encode_publish

        assert self._stop_pub is not None
        async def on_error(exc: Exception) -> None:
            self.history.note(f"{prefix} NATS connection: {type(exc).__name__}")

        nc = await nats.connect(servers=self.cfg.nats_urls, name=f"chaos-{prefix}",
                                error_cb=on_error,
                                allow_reconnect=True, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.2, connect_timeout=2)
        targets = self._targets()
        inbox = f"chaos.acks.{prefix}.{self.rng.randrange(1 << 40):x}"
        ops: dict[str, PublishOp] = {}
        window = asyncio.Semaphore(self.cfg.window)
        released: set[str] = set()

        def release(pid: str) -> None:
            if pid not in released:
                released.add(pid)
                window.release()

        async def on_ack(msg: Any) -> None:
            ack = decode_ack(msg.data)
            if ack is None:
                return
            op = ops.get(ack.correlation_id)
            if op is None:
                return
            if ack.ack_error:
                self.history.finish_op(op, FAILED, time.time_ns(),
                                       error=f"ackError {ack.ack_error}")
            else:
                self.history.finish_op(op, ACKED, time.time_ns(), offset=ack.offset)
            release(op.pid)

        sub = await nc.subscribe(inbox, cb=on_ack)
        await nc.flush(timeout=5)
        ack_policy = 1 if policy == "ALL" else 0
        seq = 0

        async def expire() -> None:
            while True:
                await asyncio.sleep(0.25)
                cutoff = time.time_ns() - int(self.cfg.ack_timeout_s * 1e9)
                for op in list(ops.values()):
                    if op.pid not in released and op.sent_ns < cutoff:
                        if op.outcome == "pending":
                            self.history.finish_op(op, TIMEOUT, time.time_ns(),
                                                   error="no ack in time")
                        release(op.pid)

        ex = asyncio.create_task(expire())
        try:
            while await self._pace():
                try:
                    await asyncio.wait_for(window.acquire(), self.cfg.ack_timeout_s * 2)
                except TimeoutError:
                    continue
                stream, part = next(targets)
                pid = f"{prefix}{seq}"
                seq += 1
                op = self.history.add_op(PublishOp(pid, stream.name, part, "nats", policy,
                                                   "nats", time.time_ns()))
                ops[pid] = op
                data = encode_publish(value=encode_payload(pid, self.cfg.pad_bytes),
                                      ack_inbox=inbox, correlation_id=pid, ack_policy=ack_policy)
                try:
                    await nc.publish(partition_subject(stream.subject, part), data)
                except Exception as exc:
                    self.history.finish_op(op, FAILED, time.time_ns(), error=type(exc).__name__)
                    release(pid)
            # Late acks: wait for what is in flight, then give it up as timed out.
            deadline = time.monotonic() + self.cfg.ack_timeout_s + 1
            while time.monotonic() < deadline and len(released) < len(ops):
                await asyncio.sleep(0.05)
        finally:
            ex.cancel()
            await asyncio.gather(ex, return_exceptions=True)
            now = time.time_ns()
            for op in ops.values():
                if op.outcome == "pending":
                    self.history.finish_op(op, TIMEOUT, now, error="no ack before the end")
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    # ------------------------------------------------------------------ consumers and poller

    async def _consume(self, stream: StreamSpec, part: int) -> None:
        from lb._proto.proto import StartPosition, SubscribeRequest

        assert self._stop_all is not None
        key = f"{stream.name}/{part}"
        name = f"consumer-{key}"
        next_offset = 0
        self.shared.consumed[key] = 0
        turn = self.rng.randrange(len(self._servers()))
        while not self._stop_all.is_set():
            servers = self._servers()
            server = servers[turn % len(servers)]
            turn += 1
            sess = self.history.add_session(ConsumerSession(
                name, stream.name, part, server, next_offset, time.time_ns()))
            req = SubscribeRequest(stream=stream.name, partition=part,
                                   start_position=StartPosition.OFFSET,
                                   start_offset=next_offset, read_isr_replica=True)
            reason = "rotated"
            try:
                async with asyncio.timeout(self.cfg.consumer_session_s):
                    async for m in self._stub(server).subscribe(req):
                        if not m.value and not m.offset:
                            continue  # the handshake
                        sess.seen.append((m.offset, decode_payload(m.value)))
                        if m.offset + 1 > next_offset:
                            next_offset = m.offset + 1
                            self.shared.consumed[key] = next_offset
                reason = "stream ended"
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                sess.ended_ns = time.time_ns()
                sess.end_reason = "workload stopped"
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:200]
                self._drop_channel(server)
            sess.ended_ns = time.time_ns()
            sess.end_reason = reason
            if reason != "rotated":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_all.wait(), 0.2)

    async def _poll_leaders(self) -> None:
        from lb._proto.proto import FetchMetadataRequest

        assert self._stop_all is not None
        last: dict[tuple[str, int], tuple[str, tuple[str, ...]]] = {}
        names = [s.name for s in self.cfg.streams]
        turn = 0
        while not self._stop_all.is_set():
            servers = self._servers()
            server = servers[turn % len(servers)]
            turn += 1
            try:
                md = await asyncio.wait_for(
                    self._stub(server).fetch_metadata(FetchMetadataRequest(streams=names),
                                                      timeout=2), 3)
                now = time.time_ns()
                for sm in md.stream_metadata:
                    for pid, pm in sm.partitions.items():
                        state = (pm.leader, tuple(sorted(pm.isr)))
                        if pm.leader and last.get((sm.name, pid)) != state:
                            last[(sm.name, pid)] = state
                            self.history.add_leader(LeaderObservation(
                                now, sm.name, pid, pm.leader, sorted(pm.isr), server))
            except Exception:
                self._drop_channel(server)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_all.wait(), self.cfg.poll_interval_s)
