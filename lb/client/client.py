"""The typed asyncio client: :class:`Client`.

What it does for the caller, following go-liftbridge's behaviour (facts, not code):

* It connects through seed servers and keeps a metadata cache (brokers, partitions, leaders).
  The cache is refreshed when a server says it is not the leader, when a server cannot be
  reached, when a stream is missing from it, and when it is older than ``metadata_max_age_s``
  (``metadata.cache.max.age``, 2 minutes).
* Publish, FetchPartitionMetadata and Subscribe go to the partition leader; Subscribe goes to a
  random in-sync replica with ``read_isr_replica=True`` (SUB-11). Stream administration goes to
  any server (followers forward it, API-CREATE-9).
* Calls are retried with bounded exponential backoff after "not leader", "no known metadata
  leader", an unreachable server, and NotFound for a stream this client created moments ago
  (its metadata may not have reached the server yet). A retried Publish may store a message
  twice (at-least-once), as with go-liftbridge.
* Failures are typed exceptions from :mod:`lb.client.errors`, carrying status and message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import betterproto
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status

from lb._proto import proto as api
from lb.client import _calls
from lb.client._publisher import AsyncPublisher
from lb.client.errors import (
    LbError,
    NoMetadataLeaderError,
    NoSuchPartitionError,
    NoSuchStreamError,
    NotFoundError,
    NotLeaderError,
    StreamDeletedError,
    UnavailableError,
    error_from_exception,
    error_from_status,
)
from lb.client.metadata import METADATA_CACHE_MAX_AGE_S, Metadata, PartitionInfo, parse_address
from lb.client.partitioners import Partitioner
from lb.client.subscription import Subscription
from lb.codec import (
    AckError,
    AckFields,
    AckPolicy,
    PublishRequestFields,
    RawBytes,
    decode_ack_proto,
    decode_publish_response,
    encode_publish_request,
)

__all__ = ["AckCallback", "Client"]

T = TypeVar("T")

AckCallback = Callable[[AckFields | None, LbError | None], None]
"""Called once per PublishAsync message: (ack, None) on success, (None, error) on failure."""

_ID_ALPHABET = string.ascii_letters + string.digits
_ACK_ERROR_STATUS = {
    AckError.INCORRECT_OFFSET: (Status.UNKNOWN, "incorrect expected offset"),
    AckError.TOO_LARGE: (Status.INVALID_ARGUMENT, "message exceeds max replication size"),
    AckError.ENCRYPTION: (Status.INTERNAL, "encryption failed on partition"),
    AckError.UNKNOWN: (Status.UNKNOWN, "unknown ack error"),
}


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a call must go: any server, or a partition's leader, or one of its ISR."""

    kind: str  # "any" | "leader" | "isr"
    stream: str = ""
    partition: int = 0


_ANY = _Route("any")


class Client:
    """A connection to an lb (or Liftbridge) cluster. See the module docstring.

    Use as ``async with Client(["127.0.0.1:9292"]) as client:``, or ``await
    Client.connect([...])`` and later ``await client.close()``. One client serves many
    concurrent tasks on one asyncio loop.
    """

    def __init__(
        self,
        servers: Sequence[str],
        *,
        metadata_max_age_s: float = METADATA_CACHE_MAX_AGE_S,
        rpc_timeout_s: float = 10.0,
        ack_timeout_s: float = 5.0,
        retries_max: int = 8,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 1.0,
        publish_async_inflight_max: int = 1024,
        resubscribe_wait_s: float = 30.0,
        created_grace_s: float = 10.0,
    ) -> None:
        if not servers:
            raise ValueError("at least one server address is needed")
        self._seeds = [_address(*parse_address(s)) for s in servers]
        self.metadata_max_age_s = metadata_max_age_s
        self.rpc_timeout_s = rpc_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.retries_max = retries_max
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.publish_async_inflight_max = publish_async_inflight_max
        self.resubscribe_wait_s = resubscribe_wait_s
        self.created_grace_s = created_grace_s
        self._channels: dict[str, Channel] = {}
        self._metadata = Metadata()
        self._metadata_lock = asyncio.Lock()
        self._any_index = 0
        self._created: dict[str, float] = {}
        self._publishers: dict[str, AsyncPublisher] = {}
        self._publisher_locks: dict[str, asyncio.Lock] = {}
        self._id_prefix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12)) + "-"
        self._ids = itertools.count()
        self._rng = random.Random()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def connect(cls, servers: Sequence[str], **options: Any) -> Client:
        """A client that has fetched metadata once (so an unreachable cluster fails here)."""
        client = cls(servers, **options)
        try:
            await client.fetch_metadata()
        except BaseException:
            await client.close()
            raise
        return client

    async def __aenter__(self) -> Client:
        try:
            await self.fetch_metadata()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Drain and close PublishAsync streams, then close every connection."""
        self._closed = True
        publishers, self._publishers = list(self._publishers.values()), {}
        for pub in publishers:
            await pub.close()
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    @property
    def metadata(self) -> Metadata:
        """The cached metadata (possibly stale; see :meth:`fetch_metadata`)."""
        return self._metadata

    # -- routing and retries --------------------------------------------------------------

    def _channel(self, address: str) -> Channel:
        if self._closed:
            raise RuntimeError("the client is closed")
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = _calls.open_channel(address)
        return channel

    def _drop_channel(self, address: str) -> None:
        channel = self._channels.pop(address, None)
        if channel is not None:
            channel.close()

    def _servers(self) -> list[str]:
        """Seeds first, then brokers learned from metadata, without duplicates."""
        learned = [b.address for b in self._metadata.brokers]
        return list(dict.fromkeys(self._seeds + learned))

    def _any_address(self) -> str:
        servers = self._servers()
        return servers[self._any_index % len(servers)]

    async def _pick(self, route: _Route) -> str:
        if route.kind == "any":
            return self._any_address()
        md = await self._metadata_for(route.stream)
        info = md.streams.get(route.stream)
        if info is None:
            raise NoSuchStreamError(Status.NOT_FOUND, f"no such stream: {route.stream}")
        if route.partition not in info.partitions:
            raise NoSuchPartitionError(Status.NOT_FOUND, f"no such partition: {route.partition}")
        if route.kind == "isr":
            candidates = md.isr_addresses(route.stream, route.partition)
            if candidates:
                return self._rng.choice(candidates)
        leader = md.leader_address(route.stream, route.partition)
        # Without a known address (e.g. an empty broker list), any server may still be the
        # leader; a wrong one answers "not leader" and the retry loop tries another.
        return leader if leader is not None else self._any_address()

    async def _metadata_for(self, stream: str) -> Metadata:
        md = self._metadata
        if stream not in md.streams or md.is_stale(time.monotonic(), self.metadata_max_age_s):
            await self._refresh(stream)
            md = self._metadata
        return md

    async def _refresh(self, stream: str | None = None) -> None:
        """Refresh the cache (one stream or all), coalescing concurrent refreshes."""
        asked_at = time.monotonic()
        async with self._metadata_lock:
            if self._metadata.fetched_at >= asked_at and (
                stream is None or stream in self._metadata.streams
            ):
                return
            await self.fetch_metadata([stream] if stream else [])

    def _invalidate(self) -> None:
        md = self._metadata
        self._metadata = Metadata(md.brokers, md.streams, float("-inf"))

    def _retryable(self, err: LbError, route: _Route) -> bool:
        if isinstance(err, UnavailableError | NotLeaderError | NoMetadataLeaderError):
            return True
        if isinstance(err, NotFoundError) and not isinstance(err, StreamDeletedError):
            created = self._created.get(route.stream)
            if created is None or time.monotonic() - created >= self.created_grace_s:
                return False
            # Partitions are fixed at creation: if the cache already knows the stream, a
            # missing partition will not appear by waiting.
            known = self._metadata.streams.get(route.stream)
            return known is None or route.partition in known.partitions
        return False

    async def _with_retry(self, route: _Route, attempt: Callable[[str], Awaitable[T]]) -> T:
        """Run ``attempt(address)`` with bounded retries (see module docstring)."""
        delay = self.backoff_base_s
        tries = 0
        while True:
            address: str | None = None
            try:
                address = await self._pick(route)
                return await attempt(address)
            except Exception as exc:
                err = error_from_exception(exc)
                if err is None:
                    raise
                tries += 1
                if not self._retryable(err, route) or tries > self.retries_max:
                    if err is exc:
                        raise
                    raise err from exc
                if isinstance(err, UnavailableError):
                    if address is not None:
                        self._drop_channel(address)
                    self._any_index += 1
                if route.kind != "any":
                    self._invalidate()
            await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))
            delay = min(delay * 2, self.backoff_max_s)

    async def _unary(self, route: _Route, path: str, request: Any, reply_type: Any,
                     timeout_s: float | None = None) -> Any:
        timeout = self.rpc_timeout_s if timeout_s is None else timeout_s

        async def attempt(address: str) -> Any:
            return await _calls.unary(self._channel(address), path, request, reply_type, timeout)

        return await self._with_retry(route, attempt)

    # -- metadata -------------------------------------------------------------------------

    async def fetch_metadata(self, streams: Sequence[str] = ()) -> Metadata:
        """Ask any server for brokers and streams (all when ``streams`` is empty), update the
        cache and return it. Unknown streams are simply absent from the result."""
        request = api.FetchMetadataRequest(streams=list(streams))
        resp: api.FetchMetadataResponse = await self._unary(
            _ANY, _calls.PATH_FETCH_METADATA, request, api.FetchMetadataResponse
        )
        newer = Metadata.from_proto(resp, time.monotonic())
        unknown = [
            s.name for s in resp.stream_metadata if s.error != api.StreamMetadataError.OK
        ]
        self._metadata = self._metadata.merged(newer, list(streams), unknown)
        return self._metadata

    async def fetch_partition_metadata(self, stream: str, partition: int = 0) -> PartitionInfo:
        """The partition as its leader sees it: HW and newest offset are current (PMETA-1)."""
        request = api.FetchPartitionMetadataRequest(stream=stream, partition=partition)
        resp: api.FetchPartitionMetadataResponse = await self._unary(
            _Route("leader", stream, partition),
            _calls.PATH_FETCH_PARTITION_METADATA,
            request,
            api.FetchPartitionMetadataResponse,
        )
        info = PartitionInfo.from_proto(stream, resp.metadata)
        return info if info.id == partition else dataclasses.replace(info, id=partition)

    # -- stream administration ------------------------------------------------------------

    async def create_stream(
        self,
        subject: str,
        name: str,
        *,
        group: str = "",
        replication_factor: int = 1,
        partitions: int = 1,
        retention_max_bytes: int | None = None,
        retention_max_messages: int | None = None,
        retention_max_age_ms: int | None = None,
        cleaner_interval_ms: int | None = None,
        segment_max_bytes: int | None = None,
        segment_max_age_ms: int | None = None,
        compact_max_goroutines: int | None = None,
        compact_enabled: bool | None = None,
        auto_pause_time_ms: int | None = None,
        auto_pause_disable_if_subscribers: bool | None = None,
        min_isr: int | None = None,
        optimistic_concurrency_control: bool | None = None,
        encryption: bool | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Create a stream on ``subject``. Raises StreamExistsError if the name is taken.

        ``None`` options take the server's defaults; durations are milliseconds (WIRE-6).
        """

        def i64(v: int | None) -> api.NullableInt64 | None:
            return None if v is None else api.NullableInt64(v)

        def i32(v: int | None) -> api.NullableInt32 | None:
            return None if v is None else api.NullableInt32(v)

        def flag(v: bool | None) -> api.NullableBool | None:
            return None if v is None else api.NullableBool(v)

        request = api.CreateStreamRequest(
            subject=subject,
            name=name,
            group=group,
            replication_factor=replication_factor,
            partitions=partitions,
        )
        options: dict[str, Any] = {
            "retention_max_bytes": i64(retention_max_bytes),
            "retention_max_messages": i64(retention_max_messages),
            "retention_max_age": i64(retention_max_age_ms),
            "cleaner_interval": i64(cleaner_interval_ms),
            "segment_max_bytes": i64(segment_max_bytes),
            "segment_max_age": i64(segment_max_age_ms),
            "compact_max_goroutines": i32(compact_max_goroutines),
            "compact_enabled": flag(compact_enabled),
            "auto_pause_time": i64(auto_pause_time_ms),
            "auto_pause_disable_if_subscribers": flag(auto_pause_disable_if_subscribers),
            "min_isr": i32(min_isr),
            "optimistic_concurrency_control": flag(optimistic_concurrency_control),
            "encryption": flag(encryption),
        }
        for field_name, value in options.items():
            if value is not None:
                # A wrapper holding 0/False must still be sent: mark it present explicitly.
                betterproto.Message.__setattr__(value, "_serialized_on_wire", True)
                setattr(request, field_name, value)
        await self._unary(_ANY, _calls.PATH_CREATE_STREAM, request, api.CreateStreamResponse,
                          timeout_s)
        self._created[name] = time.monotonic()
        if len(self._created) > 1024:  # bounded: forget the oldest
            oldest = min(self._created, key=self._created.__getitem__)
            del self._created[oldest]

    async def delete_stream(self, name: str, *, timeout_s: float | None = None) -> None:
        """Delete a stream and all its partitions (NoSuchStreamError if unknown)."""
        await self._unary(_ANY, _calls.PATH_DELETE_STREAM, api.DeleteStreamRequest(name=name),
                          api.DeleteStreamResponse, timeout_s)
        self._created.pop(name, None)
        md = self._metadata
        if name in md.streams:
            streams = {k: v for k, v in md.streams.items() if k != name}
            self._metadata = Metadata(md.brokers, streams, md.fetched_at)

    async def pause_stream(
        self,
        name: str,
        partitions: Sequence[int] = (),
        *,
        resume_all: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        """Pause partitions (all when empty). A publish resumes one (or all with
        ``resume_all``), PAUSE-4."""
        request = api.PauseStreamRequest(
            name=name, partitions=list(partitions), resume_all=resume_all
        )
        await self._unary(_ANY, _calls.PATH_PAUSE_STREAM, request, api.PauseStreamResponse,
                          timeout_s)

    async def set_stream_readonly(
        self,
        name: str,
        partitions: Sequence[int] = (),
        *,
        readonly: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        """Make partitions (all when empty) readonly, or writable again with readonly=False."""
        request = api.SetStreamReadonlyRequest(
            name=name, partitions=list(partitions), readonly=readonly
        )
        await self._unary(_ANY, _calls.PATH_SET_STREAM_READONLY, request,
                          api.SetStreamReadonlyResponse, timeout_s)

    # -- publishing -----------------------------------------------------------------------

    async def _partition_for(
        self,
        stream: str,
        key: bytes,
        value: bytes,
        partition: int | None,
        partitioner: Partitioner | None,
    ) -> int:
        if partition is not None:
            return partition
        if partitioner is None:
            return 0
        count = (await self._metadata_for(stream)).partition_count(stream)
        if count is None:
            raise NoSuchStreamError(Status.NOT_FOUND, f"no such stream: {stream}")
        return partitioner.partition(stream, key, value, count)

    def new_correlation_id(self) -> str:
        """A correlation id unique to this client (prefix + counter)."""
        return f"{self._id_prefix}{next(self._ids)}"

    async def publish(
        self,
        stream: str,
        value: bytes,
        *,
        key: bytes = b"",
        partition: int | None = None,
        partitioner: Partitioner | None = None,
        headers: Mapping[str, bytes] | None = None,
        ack_policy: AckPolicy = AckPolicy.LEADER,
        correlation_id: str = "",
        expected_offset: int = -1,
        ack_inbox: str = "",
        timeout_s: float | None = None,
    ) -> AckFields | None:
        """Publish one message and wait for its ack (None with AckPolicy.NONE).

        The partition is ``partition`` if given, else the ``partitioner``'s choice, else 0.
        ``expected_offset`` -1 skips the concurrency check (OCC-1). Ack errors raise
        (IncorrectOffsetError, MessageTooLargeError...). The request always carries a deadline
        (``timeout_s``, default ``ack_timeout_s``): without one the server would not wait.
        """
        pid = await self._partition_for(stream, key, value, partition, partitioner)
        data = encode_publish_request(
            PublishRequestFields(
                key=key,
                value=value,
                stream=stream,
                partition=pid,
                headers=dict(headers or {}),
                ack_inbox=ack_inbox,
                correlation_id=correlation_id or self.new_correlation_id(),
                ack_policy=int(ack_policy),
                expected_offset=expected_offset,
            )
        )
        timeout = self.ack_timeout_s if timeout_s is None else timeout_s
        raw = await self._unary(
            _Route("leader", stream, pid), _calls.PATH_PUBLISH, data, RawBytes, timeout
        )
        resp = decode_publish_response(raw)
        if resp.ack is None:
            return None
        return _check_ack(resp.ack)

    async def publish_to_subject(
        self,
        subject: str,
        value: bytes,
        *,
        key: bytes = b"",
        headers: Mapping[str, bytes] | None = None,
        ack_policy: AckPolicy = AckPolicy.LEADER,
        correlation_id: str = "",
        timeout_s: float | None = None,
    ) -> AckFields | None:
        """Publish to a NATS subject directly (PUBS-1); returns the first ack, if any. As in
        Liftbridge, ack errors come back inside the ack (PUBS-3), not as exceptions."""
        request = api.PublishToSubjectRequest(
            subject=subject,
            value=value,
            key=key,
            headers=dict(headers or {}),
            correlation_id=correlation_id or self.new_correlation_id(),
            ack_policy=api.AckPolicy(int(ack_policy)),
        )
        timeout = self.ack_timeout_s if timeout_s is None else timeout_s
        resp: api.PublishToSubjectResponse = await self._unary(
            _ANY, _calls.PATH_PUBLISH_TO_SUBJECT, request, api.PublishToSubjectResponse, timeout
        )
        if not betterproto.serialized_on_wire(resp.ack):
            return None
        return decode_ack_proto(bytes(resp.ack))

    async def _publisher(self, address: str) -> AsyncPublisher:
        pub = self._publishers.get(address)
        if pub is not None and not pub.broken:
            return pub
        lock = self._publisher_locks.setdefault(address, asyncio.Lock())
        async with lock:
            pub = self._publishers.get(address)
            if pub is not None and not pub.broken:
                return pub
            if pub is not None:
                await pub.close(drain_s=0)
            pub = AsyncPublisher(
                self._channel(address),
                address,
                inflight_max=self.publish_async_inflight_max,
                ack_timeout_s=self.ack_timeout_s,
            )
            await pub.open()
            self._publishers[address] = pub
            return pub

    async def publish_async(
        self,
        stream: str,
        value: bytes,
        *,
        key: bytes = b"",
        partition: int | None = None,
        partitioner: Partitioner | None = None,
        headers: Mapping[str, bytes] | None = None,
        ack_policy: AckPolicy = AckPolicy.LEADER,
        correlation_id: str = "",
        expected_offset: int = -1,
        callback: AckCallback | None = None,
    ) -> asyncio.Future[AckFields | None]:
        """Send one message on the leader's PublishAsync stream without waiting for its ack.

        Returns once the message is sent (or waits while ``publish_async_inflight_max`` acks
        are outstanding). The returned future resolves to the ack (None for AckPolicy.NONE)
        or fails with a typed error; ``callback(ack, error)`` is called too when given.
        Pipelining: ``futs = [await c.publish_async(...) for ...]; await asyncio.gather(*futs)``.
        """
        pid = await self._partition_for(stream, key, value, partition, partitioner)
        cid = correlation_id or self.new_correlation_id()
        data = encode_publish_request(
            PublishRequestFields(
                key=key,
                value=value,
                stream=stream,
                partition=pid,
                headers=dict(headers) if headers else {},
                correlation_id=cid,
                ack_policy=int(ack_policy),
                expected_offset=expected_offset,
            )
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if callback is not None:
            future.add_done_callback(_callback_adapter(callback))
        wants_ack = ack_policy != AckPolicy.NONE
        # Fast path: a fresh cache names the leader and its stream is open. Anything else, or
        # any failure, takes the general path with routing and retries.
        md = self._metadata
        address = md.leader_address(stream, pid)
        pub = None if address is None else self._publishers.get(address)
        if (
            pub is not None
            and not pub.broken
            and not md.is_stale(time.monotonic(), self.metadata_max_age_s)
        ):
            try:
                await pub.send(cid, data, future if wants_ack else None)
            except Exception:
                pub = None
            else:
                if not wants_ack:
                    future.set_result(None)
                return future

        async def attempt(address: str) -> None:
            pub = await self._publisher(address)
            await pub.send(cid, data, future if wants_ack else None)

        try:
            await self._with_retry(_Route("leader", stream, pid), attempt)
        except BaseException as exc:
            if not future.done():
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            raise
        if not wants_ack and not future.done():
            future.set_result(None)
        return future

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until no PublishAsync message is waiting for its ack (or the timeout)."""
        deadline = time.monotonic() + (self.ack_timeout_s if timeout_s is None else timeout_s)
        while any(p.pending_count() for p in self._publishers.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("publish_async acks still outstanding")
            await asyncio.sleep(0.005)

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(
        self,
        stream: str,
        *,
        partition: int = 0,
        start: api.StartPosition = api.StartPosition.NEW_ONLY,
        start_offset: int = 0,
        start_timestamp_ns: int = 0,
        stop: api.StopPosition = api.StopPosition.STOP_ON_CANCEL,
        stop_offset: int = 0,
        stop_timestamp_ns: int = 0,
        read_isr_replica: bool = False,
        resume: bool = False,
    ) -> Subscription:
        """Subscribe to one partition: an async iterator of :class:`lb.codec.MessageFields`.

        It reads from the leader (or an in-sync replica with ``read_isr_replica``) and, after
        a failover or restart, re-subscribes from the next offset (see Subscription).
        """
        request = api.SubscribeRequest(
            stream=stream,
            partition=partition,
            start_position=start,
            start_offset=start_offset,
            start_timestamp=start_timestamp_ns,
            stop_position=stop,
            stop_offset=stop_offset,
            stop_timestamp=stop_timestamp_ns,
            read_isr_replica=read_isr_replica,
            resume=resume,
        )
        route = _Route("isr" if read_isr_replica else "leader", stream, partition)

        async def open_call(req: api.SubscribeRequest, attempt_no: int) -> Stream[Any, Any]:
            if attempt_no:
                self._invalidate()
            return await self._with_retry(route, lambda address: _open_subscribe(
                self._channel(address), req))

        return Subscription(
            open_call,
            request,
            resubscribe_wait_s=self.resubscribe_wait_s,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
        )


async def _open_subscribe(channel: Channel, request: api.SubscribeRequest) -> Stream[Any, Any]:
    """Open a Subscribe call and swallow its handshake (SUB-3)."""
    call = channel.request(
        _calls.PATH_SUBSCRIBE, Cardinality.UNARY_STREAM, api.SubscribeRequest, RawBytes
    )
    await call.__aenter__()
    try:
        await call.send_message(request, end=True)
        first = await call.recv_message()
        if first is None:
            await call.recv_trailing_metadata()
            raise UnavailableError(Status.UNAVAILABLE, "the stream ended before the handshake")
    except BaseException:
        await _calls.abandon(call)
        raise
    return call


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_ack(ack: AckFields) -> AckFields:
    if ack.ack_error:
        status, text = _ACK_ERROR_STATUS.get(
            AckError(ack.ack_error) if ack.ack_error in AckError._value2member_map_
            else AckError.UNKNOWN,
            (Status.UNKNOWN, "unknown ack error"),
        )
        raise error_from_status(status, text)
    return ack


def _callback_adapter(callback: AckCallback) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()  # marks it retrieved: no "never retrieved" warning
        if exc is None:
            callback(future.result(), None)
        elif isinstance(exc, LbError):
            callback(None, exc)
        else:
            callback(None, error_from_exception(exc) or LbError(Status.UNKNOWN, repr(exc)))

    return done

