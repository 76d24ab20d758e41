"""One PublishAsync stream to one server: many messages in flight, acks matched by id.

Why a long-lived stream: a unary Publish costs about a round trip per message (~1 ms here,
design.md), while one PublishAsync stream carries thousands of messages a second. Requests are
pre-encoded bytes (``lb.codec.encode_publish_request``) and responses are decoded with
``lb.codec.decode_publish_response``; no betterproto per message.

Bounds: at most ``inflight_max`` messages wait for their ack (``send`` waits for room), and
each waits at most ``ack_timeout_s`` before its future fails with DeadlineExceededError.
When the stream breaks, every waiting future fails with the error (UnavailableError when the
server went away): their outcome is unknown and retrying them is the caller's choice
(at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status

from lb.client._calls import PATH_PUBLISH_ASYNC, abandon
from lb.client.errors import (
    DeadlineExceededError,
    LbError,
    UnavailableError,
    error_from_async_code,
    error_from_exception,
)
from lb.codec import AckFields, RawBytes, decode_publish_response

CLOSE_DRAIN_S = 5.0


class AsyncPublisher:
    """A PublishAsync session on ``channel`` (see module docstring)."""

    def __init__(
        self, channel: Channel, address: str, *, inflight_max: int, ack_timeout_s: float
    ) -> None:
        assert inflight_max > 0
        self.address = address
        self._channel = channel
        self._inflight_max = inflight_max
        self._ack_timeout_s = ack_timeout_s
        self._room = asyncio.Semaphore(inflight_max)
        self._send_lock = asyncio.Lock()
        self._pending: dict[str, tuple[asyncio.Future[AckFields], asyncio.TimerHandle]] = {}
        self._call: Stream[Any, Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failure: LbError | None = None
        self.messages_sent = 0

    @property
    def broken(self) -> bool:
        """True once the stream failed or closed; the client then opens a new one."""
        return self._failure is not None

    async def open(self) -> None:
        call = self._channel.request(
            PATH_PUBLISH_ASYNC, Cardinality.STREAM_STREAM, RawBytes, RawBytes
        )
        await call.__aenter__()
        try:
            await call.send_request()
        except BaseException:
            await abandon(call)
            raise
        self._call = call
        self._reader = asyncio.ensure_future(self._read())

    def pending_count(self) -> int:
        return len(self._pending)

    async def send(
        self, correlation_id: str, request: bytes, future: asyncio.Future[AckFields] | None
    ) -> None:
        """Send one pre-encoded PublishRequest. ``future`` (None for AckPolicy NONE, which gets
        no response, PUBA-3) is resolved with the ack or failed with a typed error."""
        if self._failure is not None:
            raise self._failure
        call = self._call
        assert call is not None, "open() first"
        if future is not None:
            if correlation_id in self._pending:
                raise ValueError(f"correlation id {correlation_id!r} is already in flight")
            await self._room.acquire()
            if self._failure is not None:
                self._room.release()
                raise self._failure
            timer = asyncio.get_running_loop().call_later(
                self._ack_timeout_s, self._expire, correlation_id
            )
            self._pending[correlation_id] = (future, timer)
        try:
            async with self._send_lock:
                await call.send_message(request)
        except Exception as exc:
            # This message's outcome is unknown: leave its future to the caller (who may retry
            # on a new stream) and fail the others that were waiting on this stream.
            if future is not None and self._pending.get(correlation_id, (None,))[0] is future:
                self._resolve(correlation_id)
            err = error_from_exception(exc) or UnavailableError(Status.UNAVAILABLE, str(exc))
            self._fail_all(err)
            raise err from exc
        self.messages_sent += 1

    def _resolve(self, correlation_id: str) -> asyncio.Future[AckFields] | None:
        entry = self._pending.pop(correlation_id, None)
        if entry is None:
            return None
        future, timer = entry
        timer.cancel()
        self._room.release()
        return None if future.done() else future

    def _expire(self, correlation_id: str) -> None:
        future = self._resolve(correlation_id)
        if future is not None:
            future.set_exception(
                DeadlineExceededError(
                    Status.DEADLINE_EXCEEDED,
                    f"no ack for {correlation_id!r} within {self._ack_timeout_s} s",
                )
            )

    async def _read(self) -> None:
        call = self._call
        assert call is not None
        err: LbError = UnavailableError(Status.UNAVAILABLE, "PublishAsync stream ended")
        try:
            while True:
                raw = await call.recv_message()
                if raw is None:
                    await call.recv_trailing_metadata()  # raises on a non-OK status
                    break
                resp = decode_publish_response(raw)
                future = self._resolve(resp.correlation_id)
                if future is None:
                    continue  # timed out already, or not ours
                if resp.async_error_code is not None:
                    future.set_exception(
                        error_from_async_code(resp.async_error_code, resp.async_error_message)
                    )
                elif resp.ack is not None:
                    future.set_result(resp.ack)
                else:
                    future.set_result(AckFields(correlation_id=resp.correlation_id))
        except asyncio.CancelledError:
            err = UnavailableError(Status.UNAVAILABLE, "PublishAsync stream closed")
            raise
        except Exception as exc:
            err = error_from_exception(exc) or UnavailableError(Status.UNAVAILABLE, repr(exc))
        finally:
            self._fail_all(err)

    def _fail_all(self, err: LbError) -> None:
        if self._failure is None:
            self._failure = err
        for cid in list(self._pending):
            future = self._resolve(cid)
            if future is not None:
                future.set_exception(err)

    async def close(self, drain_s: float = CLOSE_DRAIN_S) -> None:
        """Half-close, wait up to ``drain_s`` for outstanding acks, then drop the stream."""
        call, reader = self._call, self._reader
        if call is None:
            return
        self._call = None
        if self._failure is None:
            with contextlib.suppress(Exception):
                async with self._send_lock:
                    await call.end()
        if reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(reader), drain_s)
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        self._fail_all(UnavailableError(Status.UNAVAILABLE, "publisher closed"))
        await abandon(call)
