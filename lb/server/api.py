"""The ``proto.API`` gRPC service: Liftbridge's 16 RPCs.

Every RPC is routed through our own ``__mapping__`` to a handler that receives the grpclib
``Stream`` (deadline, metadata, raw bytes), which the generated ``ApiBase`` cannot give. The
server runs with :class:`~lb.codec.PassthroughCodec`: control-plane RPCs use the betterproto
dataclasses, while Subscribe sends stored message bytes as they are and PublishAsync decodes
requests with the fast codec (design.md: betterproto is far too slow on hot paths).

Handlers run on the asyncio loop. They read metadata and partition logs synchronously (same
thread as Trio) and wait on asyncio futures that the Trio side resolves; no per-message hop.
Every failure is a gRPC status with Liftbridge's code and text (WIRE-3).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import betterproto
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.server import Stream

from lb import codec, envelope
from lb._proto import proto as api
from lb.metadata import propagation as prop
from lb.metadata import queries
from lb.metadata.errors import MetadataError
from lb.metadata.model import StreamConfig
from lb.metadata.validation import check_not_reserved
from lb.server.grpclib_ext import cancelled_by_client, send_messages, send_unary_response
from lb.server.partition import PartitionClosed, PartitionEvents, PartitionRuntime

if TYPE_CHECKING:
    from lb.server.node import Node

log = logging.getLogger("lb.api")

COMPRESSION_UNSUPPORTED = (
    "compressed requests are not supported by this server; send messages uncompressed "
    "(grpc-encoding: identity)"
)
SUBSCRIBE_READ_BYTES_MAX = 1 << 20
PUBLISH_ASYNC_INFLIGHT_MAX = 10_000
PUBLISH_ASYNC_DRAIN_S = 5.0
PUBLISH_ASYNC_SEND_BATCH_MAX = 1024
PUBLISH_ASYNC_OUTBOX_MAX = 20_000
CREATE_WAIT_LEADERS_S = 5.0
DEADLINE_MARGIN_S = 0.25
_NUID_ALPHABET = string.ascii_letters + string.digits


def _nuid() -> str:
    return "".join(secrets.choice(_NUID_ALPHABET) for _ in range(22))


def status_error(err: MetadataError) -> GRPCError:
    """The one mapping from lb's error taxonomy to a gRPC status."""
    return GRPCError(Status(err.code.grpc_code), err.message)


def _closed_error(closed: PartitionClosed) -> GRPCError:
    return GRPCError(Status[closed.code], closed.message)


def guard_handler(func: Callable[[Stream[Any, Any]], Awaitable[None]]) -> Callable[..., Any]:
    """Statuses for what grpclib would report as "Internal Server Error".

    Compressed requests (grpclib cannot decode them) become UNIMPLEMENTED with a clear message,
    lb's metadata errors become their statuses, and RPCs cut short by shutdown UNAVAILABLE.
    """

    @functools.wraps(func)
    async def guarded(stream: Stream[Any, Any]) -> None:
        try:
            await func(stream)
        except asyncio.CancelledError:
            if cancelled_by_client(stream):
                raise  # the client went away or its deadline passed: grpclib handles it
            # The server is closing: tell the client why (SUB-10), so it resubscribes or
            # retries elsewhere. grpclib sends this status as the trailers.
            raise GRPCError(Status.UNAVAILABLE, "server is shutting down") from None
        except NotImplementedError as exc:
            if "Compression" in str(exc):
                raise GRPCError(Status.UNIMPLEMENTED, COMPRESSION_UNSUPPORTED) from exc
            raise
        except MetadataError as err:
            raise status_error(err) from err

    return guarded


async def recv_request(stream: Stream[Any, Any]) -> Any:
    """The request message; InvalidArgument if its bytes do not decode.

    betterproto's parser fails on some malformed input with arbitrary exceptions
    (AttributeError, ValueError, ...), which grpclib would report as an internal error.
    """
    try:
        return await stream.recv_message()
    except (GRPCError, NotImplementedError, StreamTerminatedError, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise GRPCError(
            Status.INVALID_ARGUMENT, f"malformed request: {type(exc).__name__}: {exc}"
        ) from None


def _remaining(stream: Stream[Any, Any]) -> float | None:
    """Seconds left before the call's deadline, less a margin, or None without a deadline.

    The margin (10%, at most 250 ms) lets our own status (DeadlineExceeded, Internal "raft
    operation timed out", "no known metadata leader") reach the client before its deadline
    fires locally; otherwise the client only sees its own timeout and never the reason. 50 ms
    was too little on a loaded 2-core machine: the request's arrival and the reply's delivery
    both wait for busy event loops.
    """
    deadline = stream.deadline
    if deadline is None:
        return None
    remaining = deadline.time_remaining()
    return max(0.0, remaining - min(DEADLINE_MARGIN_S, remaining * 0.1))


def _config(req: api.CreateStreamRequest) -> StreamConfig:
    """Per-stream overrides: a present Nullable* wrapper overrides, explicit 0/False included."""

    def get(name: str) -> Any:
        value = getattr(req, name)
        return value.value if betterproto.serialized_on_wire(value) else None

    return StreamConfig(
        retention_max_bytes=get("retention_max_bytes"),
        retention_max_messages=get("retention_max_messages"),
        retention_max_age_ms=get("retention_max_age"),
        cleaner_interval_ms=get("cleaner_interval"),
        segment_max_bytes=get("segment_max_bytes"),
        segment_max_age_ms=get("segment_max_age"),
        compact_max_goroutines=get("compact_max_goroutines"),
        compact_enabled=get("compact_enabled"),
        auto_pause_time_ms=get("auto_pause_time"),
        auto_pause_disable_if_subscribers=get("auto_pause_disable_if_subscribers"),
        min_isr=get("min_isr"),
        optimistic_concurrency_control=get("optimistic_concurrency_control"),
        encryption=get("encryption"),
    )


AckHandler = Callable[[bytes, str | None, int], None]
"""Receives an ack envelope, with its correlation id and ack error when known (local
delivery) or None and 0 when it came over NATS (the handler decodes it)."""


class AckRouter:
    """Receives ack envelopes for this server's generated ack inboxes and routes them.

    One NATS subscription on ``<ns>.ack.<server id>.>``; a Publish waits on a future for its
    own inbox, a PublishAsync session receives every ack of its session inbox.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._prefix_dot = prefix + "."
        self._routes: dict[str, AckHandler] = {}

    def new_inbox(self) -> str:
        return f"{self.prefix}.{_nuid()}"

    def route(self, inbox: str, handler: AckHandler) -> None:
        self._routes[inbox] = handler

    def unroute(self, inbox: str) -> None:
        self._routes.pop(inbox, None)

    async def on_msg(self, msg: Any) -> None:
        handler = self._routes.get(msg.subject)
        if handler is not None:
            handler(msg.data, None, 0)

    def deliver(self, inbox: str, data: bytes, correlation_id: str, ack_error: int) -> bool:
        """Hand an ack to a waiter of this server directly, without the NATS round trip.

        Partitions led here call it (synchronously, from Trio) before publishing an ack on
        NATS. True when ``inbox`` is one of ours: delivered, or dropped because its waiter
        is gone (nobody else subscribes to our inboxes). False: publish it on NATS.
        """
        if not inbox.startswith(self._prefix_dot):
            return False
        handler = self._routes.get(inbox)
        if handler is not None:
            handler(data, correlation_id, ack_error)
        return True


class ApiService:
    """lb's implementation of Liftbridge's API on one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.acks = AckRouter(f"{node.config.clustering.namespace}.ack.{node.info.server_id}")

    async def metadata_call(self, request: Any, timeout_s: float | None) -> None:
        """A metadata request from this server's own tasks (auto-pause, replication)."""
        await self._controller.request(request, timeout_s)

    # -- plumbing ---------------------------------------------------------------------------

    def __mapping__(self) -> dict[str, Handler]:
        unary, stream_out, bidi = (
            Cardinality.UNARY_UNARY,
            Cardinality.UNARY_STREAM,
            Cardinality.STREAM_STREAM,
        )
        rpcs: list[tuple[str, Callable[..., Any], Cardinality, Any, Any]] = [
            (
                "CreateStream",
                self.create_stream,
                unary,
                api.CreateStreamRequest,
                api.CreateStreamResponse,
            ),
            (
                "DeleteStream",
                self.delete_stream,
                unary,
                api.DeleteStreamRequest,
                api.DeleteStreamResponse,
            ),
            (
                "PauseStream",
                self.pause_stream,
                unary,
                api.PauseStreamRequest,
                api.PauseStreamResponse,
            ),
            (
                "SetStreamReadonly",
                self.set_stream_readonly,
                unary,
                api.SetStreamReadonlyRequest,
                api.SetStreamReadonlyResponse,
            ),
            ("Subscribe", self.subscribe, stream_out, api.SubscribeRequest, bytes),
            (
                "FetchMetadata",
                self.fetch_metadata,
                unary,
                api.FetchMetadataRequest,
                api.FetchMetadataResponse,
            ),
            (
                "FetchPartitionMetadata",
                self.fetch_partition_metadata,
                unary,
                api.FetchPartitionMetadataRequest,
                api.FetchPartitionMetadataResponse,
            ),
            ("Publish", self.publish, unary, codec.RawBytes, bytes),
            ("PublishAsync", self.publish_async, bidi, codec.RawBytes, bytes),
            (
                "PublishToSubject",
                self.publish_to_subject,
                unary,
                api.PublishToSubjectRequest,
                api.PublishToSubjectResponse,
            ),
            (
                "SetCursor",
                self.unimplemented("SetCursor"),
                unary,
                api.SetCursorRequest,
                api.SetCursorResponse,
            ),
            (
                "FetchCursor",
                self.unimplemented("FetchCursor"),
                unary,
                api.FetchCursorRequest,
                api.FetchCursorResponse,
            ),
            (
                "JoinConsumerGroup",
                self.unimplemented("JoinConsumerGroup"),
                unary,
                api.JoinConsumerGroupRequest,
                api.JoinConsumerGroupResponse,
            ),
            (
                "LeaveConsumerGroup",
                self.unimplemented("LeaveConsumerGroup"),
                unary,
                api.LeaveConsumerGroupRequest,
                api.LeaveConsumerGroupResponse,
            ),
            (
                "FetchConsumerGroupAssignments",
                self.unimplemented("FetchConsumerGroupAssignments"),
                unary,
                api.FetchConsumerGroupAssignmentsRequest,
                api.FetchConsumerGroupAssignmentsResponse,
            ),
            (
                "ReportConsumerGroupCoordinator",
                self.unimplemented("ReportConsumerGroupCoordinator"),
                unary,
                api.ReportConsumerGroupCoordinatorRequest,
                api.ReportConsumerGroupCoordinatorResponse,
            ),
        ]
        return {
            f"/proto.API/{name}": Handler(guard_handler(func), card, req, reply)
            for name, func, card, req, reply in rpcs
        }

    @property
    def _controller(self) -> Any:
        controller = self.node.controller
        if controller is None:
            raise GRPCError(Status.UNAVAILABLE, "server is starting")
        return controller

    @property
    def _partitions(self) -> Any:
        manager = self.node.partitions
        if manager is None:
            raise GRPCError(Status.UNAVAILABLE, "server is starting")
        return manager

    async def _metadata_request(self, request: Any, stream: Stream[Any, Any]) -> None:
        await self._controller.request(request, _remaining(stream))

    @staticmethod
    def unimplemented(name: str) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
        """A handler for an RPC lb does not serve yet (cursors, consumer groups)."""

        async def handler(stream: Stream[Any, Any]) -> None:
            await recv_request(stream)
            raise GRPCError(Status.UNIMPLEMENTED, f"{name} is not implemented by lb yet")

        return handler

    # -- stream management ------------------------------------------------------------------

    async def create_stream(self, stream: Stream[Any, Any]) -> None:
        req: api.CreateStreamRequest = await recv_request(stream)
        config = _config(req)
        if config.encryption:
            raise GRPCError(
                Status.FAILED_PRECONDITION,
                "Failed on preconditions for stream's encryption handler: "
                "encryption at rest is not supported by lb yet",
            )
        request = prop.create_stream_request(
            name=req.name,
            subject=req.subject,
            partitions=req.partitions,
            replication_factor=req.replication_factor,
            group=req.group,
            config=config,
        )
        await self._metadata_request(request, stream)
        await self._wait_local_leaders(req.name)
        await stream.send_message(api.CreateStreamResponse())

    async def _wait_local_leaders(self, name: str) -> None:
        """Best effort (API-CREATE-1): wait until partitions this server leads listen on NATS,
        so that a publish right after the create is not lost."""
        deadline = time.monotonic() + CREATE_WAIT_LEADERS_S
        me = self.node.info.server_id
        while time.monotonic() < deadline:
            s = self._controller.state.streams.get(name)
            if s is None:
                return
            pending = False
            for p in s.partitions:
                if p.leader == me and not p.paused:
                    rt = self._partitions.get(name, p.id)
                    if rt is None or not rt.listening:
                        pending = True
            if not pending:
                return
            await asyncio.sleep(0.01)

    async def delete_stream(self, stream: Stream[Any, Any]) -> None:
        req: api.DeleteStreamRequest = await recv_request(stream)
        check_not_reserved(req.name)
        await self._metadata_request(prop.delete_stream_request(req.name), stream)
        # Best effort, like the create: return once this server's copy of the data is gone.
        deadline = time.monotonic() + CREATE_WAIT_LEADERS_S
        while self._partitions.stopping(req.name) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await stream.send_message(api.DeleteStreamResponse())

    async def pause_stream(self, stream: Stream[Any, Any]) -> None:
        req: api.PauseStreamRequest = await recv_request(stream)
        request = prop.pause_stream_request(req.name, req.partitions, req.resume_all)
        await self._metadata_request(request, stream)
        await stream.send_message(api.PauseStreamResponse())

    async def set_stream_readonly(self, stream: Stream[Any, Any]) -> None:
        req: api.SetStreamReadonlyRequest = await recv_request(stream)
        request = prop.set_stream_readonly_request(req.name, req.partitions, req.readonly)
        await self._metadata_request(request, stream)
        await stream.send_message(api.SetStreamReadonlyResponse())

    # -- metadata ---------------------------------------------------------------------------

    async def fetch_metadata(self, stream: Stream[Any, Any]) -> None:
        req: api.FetchMetadataRequest = await recv_request(stream)
        controller = self._controller
        state = controller.state
        me = self.node.info.server_id
        brokers = [
            api.Broker(
                id=b.id,
                host=b.host,
                port=b.port,
                partition_count=b.partition_count,
                leader_count=b.leader_count,
            )
            for b in queries.broker_views(state, controller.members(), first=me)
        ]
        if not brokers or brokers[0].id != me:
            # Not registered in the metadata yet (just started): list ourselves anyway, first.
            advertise = self.node.config.advertise_address
            brokers.insert(
                0,
                api.Broker(
                    id=me,
                    host=advertise.host,
                    port=advertise.port or self.node.info.grpc_port,
                    partition_count=state.partition_load().get(me, 0),
                    leader_count=state.leader_load().get(me, 0),
                ),
            )
        out = []
        for view in queries.stream_views(state, req.streams):
            if isinstance(view, queries.UnknownStream):
                out.append(
                    api.StreamMetadata(name=view.name, error=api.StreamMetadataError.UNKNOWN_STREAM)
                )
                continue
            out.append(
                api.StreamMetadata(
                    name=view.name,
                    subject=view.subject,
                    creation_timestamp=view.creation_timestamp_ns,
                    partitions={
                        p.id: self._partition_metadata(
                            p,
                            self._partitions.get(view.name, p.id),
                            self._partitions.events(view.name, p.id),
                        )
                        for p in view.partitions
                    },
                )
            )
        await stream.send_message(api.FetchMetadataResponse(brokers=brokers, stream_metadata=out))

    @staticmethod
    def _partition_metadata(
        p: Any, rt: PartitionRuntime | None, events: PartitionEvents | None = None
    ) -> api.PartitionMetadata:
        md = api.PartitionMetadata(
            id=p.id,
            leader=p.leader,
            replicas=list(p.replicas),
            isr=list(p.isr),
            high_watermark=-1,
            newest_offset=-1,
            paused=p.paused,
            readonly=p.readonly,
        )
        if rt is not None:
            md.high_watermark = rt.hw()
            md.newest_offset = rt.newest_offset()
            events = rt.events
        if events is not None:
            md.messages_received_timestamps = api.PartitionEventTimestamps(
                events.messages_received.first_ns, events.messages_received.latest_ns
            )
            md.pause_timestamps = api.PartitionEventTimestamps(
                events.pause.first_ns, events.pause.latest_ns
            )
            md.readonly_timestamps = api.PartitionEventTimestamps(
                events.readonly.first_ns, events.readonly.latest_ns
            )
        return md

    async def fetch_partition_metadata(self, stream: Stream[Any, Any]) -> None:
        req: api.FetchPartitionMetadataRequest = await recv_request(stream)
        state = self._controller.state
        p = queries.partition_for_fetch_metadata(
            state, req.stream, req.partition, self.node.info.server_id
        )
        rt = self._partitions.get(req.stream, req.partition)
        if rt is None:
            raise GRPCError(
                Status.FAILED_PRECONDITION, "The request should be sent to partition leader"
            )
        await stream.send_message(
            api.FetchPartitionMetadataResponse(metadata=self._partition_metadata(p, rt))
        )

    # -- publishing -------------------------------------------------------------------------

    def _publish_checks(self, name: str, partition: int, ack_policy: int) -> Any:
        """PUB-2's checks in order; returns the partition record."""
        state = self._controller.state
        p = queries.publish_target(state, name, partition)
        queries.check_writable(p)
        s = state.streams[name]
        if s.config.optimistic_concurrency_control and ack_policy == codec.AckPolicy.NONE:
            raise GRPCError(
                Status.INVALID_ARGUMENT,
                "stream with concurrency control must have AckPolicy set",
            )
        return p

    async def _resume_if_paused(self, name: str, partition: int, timeout_s: float | None) -> None:
        """PAUSE-4: a publish to a paused partition resumes it (and, with resumeAll, all)."""
        state = self._controller.state
        to_resume = queries.partitions_to_resume(state, name, partition)
        if not to_resume:
            return
        await self._controller.request(prop.resume_stream_request(name, to_resume), timeout_s)
        deadline = time.monotonic() + CREATE_WAIT_LEADERS_S
        me = self.node.info.server_id
        while time.monotonic() < deadline:  # wait until our resumed leaders listen again
            s = self._controller.state.streams.get(name)
            p = s.partition(partition) if s else None
            if p is None or p.leader != me:
                return
            rt = self._partitions.get(name, partition)
            if rt is not None and rt.listening:
                return
            await asyncio.sleep(0.01)

    async def publish(self, stream: Stream[Any, Any]) -> None:
        """Unary Publish. Decoded and answered with the fast codec: betterproto cost ~1 ms of
        server CPU per call here (tools/bench P3 profile)."""
        raw = await recv_request(stream)
        try:
            req = codec.decode_publish_request(raw or b"")
        except codec.DecodeError as exc:
            raise GRPCError(Status.INVALID_ARGUMENT, f"malformed request: {exc}") from None
        timeout_s = _remaining(stream)
        p = self._publish_checks(req.stream, req.partition, req.ack_policy)
        await self._resume_if_paused(req.stream, req.partition, timeout_s)
        s = self._controller.state.streams[req.stream]
        subject = s.partition_subject(p.id)
        ack = await self._publish_and_wait(
            subject,
            key=req.key,
            value=req.value,
            headers=req.headers,
            ack_inbox=req.ack_inbox,
            correlation_id=req.correlation_id,
            ack_policy=req.ack_policy,
            expected_offset=req.expected_offset,
            timeout_s=timeout_s,
        )
        if ack is None:
            await send_unary_response(stream, b"")  # an empty PublishResponse (PUB-3)
            return
        if ack.ack_error == codec.AckError.INCORRECT_OFFSET:
            raise GRPCError(Status.UNKNOWN, "incorrect expected offset")
        if ack.ack_error == codec.AckError.TOO_LARGE:
            raise GRPCError(Status.INVALID_ARGUMENT, "message exceeds max replication size")
        if ack.ack_error == codec.AckError.ENCRYPTION:
            raise GRPCError(Status.INTERNAL, "encryption failed on partition")
        # PUB-6: unary Publish fills only ``ack`` (never correlationId or asyncError).
        # One write for headers, message and trailers (grpclib_ext).
        await send_unary_response(
            stream,
            codec.encode_publish_response(
                ack=ack.to_bytes(),
                async_error_code=None,
                async_error_message="",
                correlation_id="",
            ),
        )

    async def publish_to_subject(self, stream: Stream[Any, Any]) -> None:
        req: api.PublishToSubjectRequest = await recv_request(stream)
        if not req.subject:
            raise GRPCError(Status.INVALID_ARGUMENT, "no subject provided")
        ack = await self._publish_and_wait(
            req.subject,
            key=req.key,
            value=req.value,
            headers=dict(req.headers),
            ack_inbox=req.ack_inbox,
            correlation_id=req.correlation_id,
            ack_policy=int(req.ack_policy),
            expected_offset=-1,
            timeout_s=_remaining(stream),
        )
        if ack is None:
            await stream.send_message(api.PublishToSubjectResponse())
            return
        # PUBS-3: ack errors are not turned into statuses here.
        await stream.send_message(api.PublishToSubjectResponse(ack=api.Ack().parse(ack.to_bytes())))

    async def _publish_and_wait(
        self,
        subject: str,
        *,
        key: bytes,
        value: bytes,
        headers: dict[str, bytes],
        ack_inbox: str,
        correlation_id: str,
        ack_policy: int,
        expected_offset: int,
        timeout_s: float | None,
    ) -> codec.AckFields | None:
        """Publish an enveloped message on NATS; wait for its first ack (PUB-3, PUBS-2)."""
        nats = self.node.nats
        wait = ack_policy != codec.AckPolicy.NONE and timeout_s is not None
        own_inbox = not ack_inbox
        inbox = ack_inbox or self.acks.new_inbox()
        data = envelope.encode_publish(
            key, value, headers, inbox, correlation_id, ack_policy, expected_offset
        )
        if len(data) > nats.max_payload:
            raise GRPCError(Status.UNKNOWN, _max_payload_text(len(data), nats.max_payload))
        if not wait:
            await nats.publish(subject, data)
            return None
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def on_ack(payload: bytes, _cid: str | None = None, _error: int = 0) -> None:
            if not fut.done():
                fut.set_result(payload)

        sub = None
        if own_inbox:
            self.acks.route(inbox, on_ack)
        else:

            async def cb(msg: Any) -> None:
                on_ack(msg.data)

            sub = await nats.subscribe(inbox, cb=cb, max_msgs=1)
        try:
            await nats.publish(subject, data)
            try:
                payload = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:
                raise GRPCError(Status.DEADLINE_EXCEEDED, "timed out waiting for ack") from None
        finally:
            if own_inbox:
                self.acks.unroute(inbox)
            elif sub is not None:
                # It may have unsubscribed itself already, after its one message.
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        ack = envelope.decode_ack(payload)
        if ack is None:
            raise GRPCError(Status.INTERNAL, "received an invalid ack")
        return ack

    async def publish_async(self, stream: Stream[Any, Any]) -> None:
        """PublishAsync: pipelined publishes; responses carry acks or per-message errors."""
        nats = self.node.nats
        session_inbox = self.acks.new_inbox()
        # Bounded: at most PUBLISH_ASYNC_INFLIGHT_MAX publishes await their ack, and the
        # receive loop stops reading while PUBLISH_ASYNC_OUTBOX_MAX responses wait to be sent.
        outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        outbox_room = asyncio.Event()
        outbox_room.set()
        inflight = 0
        drained = asyncio.Event()  # no publish awaits its ack
        drained.set()
        room = asyncio.Event()  # fewer than PUBLISH_ASYNC_INFLIGHT_MAX await their ack
        room.set()

        def on_ack(payload: bytes, correlation_id: str | None, ack_error: int) -> None:
            nonlocal inflight
            if correlation_id is None:  # from NATS: decode (and check) it
                ack = envelope.decode_ack(payload)
                if ack is None:
                    return
                correlation_id, ack_error = ack.correlation_id, ack.ack_error
            ack_bytes = payload[payload[5] :]  # the Ack as sent (header checked above)
            inflight = max(0, inflight - 1)
            if inflight < PUBLISH_ASYNC_INFLIGHT_MAX:
                room.set()
            if inflight == 0:
                drained.set()
            if ack_error:
                code, text = _ASYNC_ACK_ERRORS.get(
                    ack_error, (codec.PublishAsyncErrorCode.UNKNOWN, "unknown ack error")
                )
                outbox.put_nowait(
                    codec.encode_publish_response(
                        ack=b"",
                        async_error_code=code,
                        async_error_message=text,
                        correlation_id=correlation_id,
                    )
                )
                return
            outbox.put_nowait(
                codec.encode_publish_response(
                    ack=ack_bytes,
                    async_error_code=None,
                    async_error_message="",
                    correlation_id=correlation_id,
                )
            )

        def error(correlation_id: str, code: int, text: str) -> None:
            outbox.put_nowait(
                codec.encode_publish_response(
                    ack=b"",
                    async_error_code=code,
                    async_error_message=text,
                    correlation_id=correlation_id,
                )
            )

        async def sender() -> None:
            # Everything queued goes out in one write (grpclib_ext): acks arrive per batch.
            while True:
                batch = [await outbox.get()]
                while len(batch) < PUBLISH_ASYNC_SEND_BATCH_MAX and not outbox.empty():
                    batch.append(outbox.get_nowait())
                done = batch[-1] is None
                await send_messages(stream, [m for m in batch if m is not None])
                if outbox.qsize() < PUBLISH_ASYNC_OUTBOX_MAX:
                    outbox_room.set()
                if done:
                    return

        self.acks.route(session_inbox, on_ack)
        send_task = asyncio.ensure_future(sender())
        try:
            while True:
                if outbox.qsize() >= PUBLISH_ASYNC_OUTBOX_MAX:
                    outbox_room.clear()
                    await outbox_room.wait()  # the client is not reading its responses
                raw = await stream.recv_message()
                if raw is None:
                    break
                try:
                    req = codec.decode_publish_request(raw)
                except codec.DecodeError as exc:
                    error("", codec.PublishAsyncErrorCode.BAD_REQUEST, f"bad request: {exc}")
                    continue
                try:
                    p = self._publish_checks(req.stream, req.partition, req.ack_policy)
                    await self._resume_if_paused(req.stream, req.partition, None)
                except MetadataError as err:
                    text = err.message
                    if not req.stream:
                        # PUBA-2: existence is checked first, so "no such stream: ".
                        text = f"no such stream: {req.stream}"
                    error(req.correlation_id, _ASYNC_CODES.get(err.code.name, 0), text)
                    continue
                except GRPCError as err:
                    code = (
                        codec.PublishAsyncErrorCode.BAD_REQUEST
                        if err.status is Status.INVALID_ARGUMENT
                        else codec.PublishAsyncErrorCode.INTERNAL
                    )
                    error(req.correlation_id, code, err.message or "")
                    continue
                s = self._controller.state.streams[req.stream]
                data = envelope.encode_publish(
                    req.key,
                    req.value,
                    req.headers,
                    session_inbox,  # PUBA-4: the session's inbox replaces the client's
                    req.correlation_id,
                    req.ack_policy,
                    req.expected_offset,
                )
                if len(data) > nats.max_payload:
                    error(  # PUBA-2: NATS failures are INTERNAL
                        req.correlation_id,
                        codec.PublishAsyncErrorCode.INTERNAL,
                        _max_payload_text(len(data), nats.max_payload),
                    )
                    continue
                if req.ack_policy != codec.AckPolicy.NONE:
                    if inflight >= PUBLISH_ASYNC_INFLIGHT_MAX:
                        room.clear()
                        try:
                            await asyncio.wait_for(room.wait(), PUBLISH_ASYNC_DRAIN_S)
                        except TimeoutError:
                            # Acks that never came (e.g. the partition paused meanwhile):
                            # stop waiting for them rather than stall the session.
                            log.warning("PublishAsync: %d acks overdue; forgetting them", inflight)
                            inflight = 0
                    inflight += 1
                    drained.clear()
                await nats.publish(s.partition_subject(p.id), data)
            # PUBA-5: wait up to 5 s for outstanding acks, then end with OK.
            if inflight:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(drained.wait(), PUBLISH_ASYNC_DRAIN_S)
        finally:
            self.acks.unroute(session_inbox)
            outbox.put_nowait(None)
            with contextlib.suppress(StreamTerminatedError, asyncio.CancelledError):
                await send_task

    # -- subscribing ------------------------------------------------------------------------

    async def subscribe(self, stream: Stream[Any, Any]) -> None:
        req: api.SubscribeRequest = await recv_request(stream)
        controller = self._controller
        state = controller.state
        p = queries.subscribe_target(state, req.stream, req.partition)
        me = self.node.info.server_id
        if p.leader != me and not req.read_isr_replica:
            raise GRPCError(Status.FAILED_PRECONDITION, "Server not partition leader")
        if p.paused and req.resume:
            await self._resume_if_paused(req.stream, req.partition, _remaining(stream))
            p = queries.subscribe_target(controller.state, req.stream, req.partition)
        rt = self._partitions.get(req.stream, req.partition)
        if p.paused or rt is None:
            # PAUSE-5: handshake, then FailedPrecondition.
            await stream.send_message(b"")
            raise GRPCError(Status.FAILED_PRECONDITION, "commit log was closed")
        if rt.log is None:  # just started: wait (bounded) for its log to open
            try:
                await asyncio.wait_for(rt.notifier.wait(), CREATE_WAIT_LEADERS_S)
            except PartitionClosed as closed:
                raise _closed_error(closed) from None
            except TimeoutError:
                raise GRPCError(Status.UNAVAILABLE, "partition is not open yet") from None
        start = self._start_offset(rt, req)
        stop = self._stop_offset(rt, req, start)
        await stream.send_message(b"")  # SUB-3 handshake
        rt.subscribers += 1
        try:
            await self._stream_messages(stream, rt, start, stop)
        finally:
            rt.subscribers -= 1

    def _start_offset(self, rt: PartitionRuntime, req: api.SubscribeRequest) -> int:
        pos = req.start_position
        newest = rt.newest_offset()
        oldest = max(rt.oldest_offset(), 0)
        if pos == api.StartPosition.NEW_ONLY:
            return newest + 1
        if pos == api.StartPosition.EARLIEST:
            return oldest
        if pos == api.StartPosition.LATEST:
            return max(newest, 0)
        if pos == api.StartPosition.OFFSET:
            # SUB-6: negative or below the oldest: the oldest; past the end: the next new one.
            return min(max(req.start_offset, oldest), newest + 1)
        if pos == api.StartPosition.TIMESTAMP:
            found = rt.offset_for_timestamp(req.start_timestamp)
            return newest + 1 if found is None else found
        raise GRPCError(Status.INVALID_ARGUMENT, f"Unknown StartPosition {int(pos)}")

    def _stop_offset(self, rt: PartitionRuntime, req: api.SubscribeRequest, start: int) -> int:
        """The last offset to deliver, or -1 for none (SUB-8, SUB-9, RO-5)."""
        pos = req.stop_position
        newest = rt.newest_offset()
        stop = -1
        if pos == api.StopPosition.STOP_ON_CANCEL:
            if not rt.readonly:
                return -1
            stop = newest
        elif pos == api.StopPosition.STOP_OFFSET:
            if req.stop_offset == -1:
                return -1
            stop = req.stop_offset
        elif pos == api.StopPosition.STOP_LATEST:
            if newest < 0:
                raise GRPCError(Status.RESOURCE_EXHAUSTED, "Stream is empty")
            stop = newest
        elif pos == api.StopPosition.STOP_TIMESTAMP:
            stop = self._last_offset_at_or_before(rt, req.stop_timestamp)
        else:
            raise GRPCError(Status.INVALID_ARGUMENT, f"Unknown StopPosition {int(pos)}")
        if stop < start:
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"Stop offset is before start offset: {stop} < {start}"
            )
        return stop

    @staticmethod
    def _last_offset_at_or_before(rt: PartitionRuntime, ts_ns: int) -> int:
        after = rt.offset_for_timestamp(ts_ns + 1)
        last = rt.newest_offset() if after is None else after - 1
        if last < max(rt.oldest_offset(), 0):
            raise GRPCError(
                Status.INTERNAL,
                f"Failed to lookup offset for timestamp: no message at or before {ts_ns}",
            )
        return last

    async def _stream_messages(
        self, stream: Stream[Any, Any], rt: PartitionRuntime, offset: int, stop: int
    ) -> None:
        encode = codec.SubscribeEncoder(rt.stream.name, rt.meta.id).encode_records
        while True:
            try:
                records = rt.read_committed(offset, SUBSCRIBE_READ_BYTES_MAX)
            except PartitionClosed as closed:
                raise _closed_error(closed) from None
            if records:
                if stop >= 0 and records[-1].offset > stop:
                    records = [rec for rec in records if rec.offset <= stop]
                # One write per read batch, not one per message (grpclib_ext).
                await send_messages(stream, encode(records))
                offset = records[-1].offset + 1
                if stop >= 0 and offset > stop:
                    raise GRPCError(Status.RESOURCE_EXHAUSTED, "Stop offset reached")
                continue
            if rt.readonly and offset > rt.newest_offset() and rt.hw() >= rt.newest_offset():
                raise GRPCError(Status.RESOURCE_EXHAUSTED, "End of readonly partition")
            try:
                await rt.notifier.wait()
            except PartitionClosed as closed:
                raise _closed_error(closed) from None


def _max_payload_text(size: int, max_payload: int) -> str:
    """WIRE-4 / ACK-5: a message above the NATS max payload fails at the NATS publish."""
    return f"failed to publish to NATS: nats: maximum payload exceeded ({size} > {max_payload})"


_ASYNC_CODES = {
    "NOT_FOUND": codec.PublishAsyncErrorCode.NOT_FOUND,
    "INVALID_ARGUMENT": codec.PublishAsyncErrorCode.NOT_FOUND,  # "no stream provided" (PUBA-2)
    "FAILED_PRECONDITION": codec.PublishAsyncErrorCode.READONLY,
    "INTERNAL": codec.PublishAsyncErrorCode.INTERNAL,
}

_ASYNC_ACK_ERRORS = {
    codec.AckError.INCORRECT_OFFSET: (
        codec.PublishAsyncErrorCode.INCORRECT_OFFSET,
        "incorrect expected offset",
    ),
    codec.AckError.TOO_LARGE: (
        codec.PublishAsyncErrorCode.BAD_REQUEST,
        "message exceeds max replication size",
    ),
    codec.AckError.ENCRYPTION: (
        codec.PublishAsyncErrorCode.ENCRYPTION_FAILED,
        "encryption failed on partition",
    ),
}
