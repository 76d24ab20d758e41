"""Helpers for the data-plane end-to-end tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError

from lb import codec
from lb._proto import proto as api
from lb.testing.lb_process import LbProcess

SERVER_ID = "dp1"
_names = itertools.count()


def unique(prefix: str = "s") -> str:
    """A stream name (and subject) no other test in the session uses."""
    return f"{prefix}{next(_names)}p{os.getpid()}"


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 10.0, what: str = "condition"
) -> Any:
    """Poll an async check until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last value {last!r}")


async def create(client: api.ApiStub, name: str, subject: str | None = None, **kw: Any) -> None:
    await client.create_stream(api.CreateStreamRequest(subject=subject or name, name=name, **kw))


async def publish(
    client: api.ApiStub,
    stream: str,
    value: bytes,
    *,
    partition: int = 0,
    key: bytes = b"",
    ack_policy: api.AckPolicy = api.AckPolicy.ALL,
    timeout: float | None = 5,
    **kw: Any,
) -> api.PublishResponse:
    req = api.PublishRequest(
        stream=stream, partition=partition, key=key, value=value, ack_policy=ack_policy, **kw
    )
    return await client.publish(req, timeout=timeout)


async def read(
    client: api.ApiStub,
    stream: str,
    *,
    partition: int = 0,
    start: api.StartPosition = api.StartPosition.EARLIEST,
    stop: api.StopPosition = api.StopPosition.STOP_LATEST,
    count: int | None = None,
    timeout: float = 10,
    **kw: Any,
) -> tuple[list[api.Message], GRPCError | None]:
    """Subscribe and collect messages until the stream ends or ``count`` have arrived.

    Checks and swallows the empty handshake (SUB-3). Returns the messages and the status
    that ended the stream (None when ``count`` was reached or ``timeout`` passed).
    """
    req = api.SubscribeRequest(
        stream=stream, partition=partition, start_position=start, stop_position=stop, **kw
    )
    out: list[api.Message] = []
    try:
        async with asyncio.timeout(timeout):
            first = True
            async for m in client.subscribe(req, timeout=timeout):
                if first:
                    first = False
                    assert m == api.Message(), "the first message is the empty handshake"
                    continue
                out.append(m)
                if count is not None and len(out) >= count:
                    return out, None
    except GRPCError as err:
        return out, err
    except TimeoutError:
        return out, None
    return out, None


class Sub:
    """A subscription running in the background: messages collect in ``messages``.

    ``await sub.ready()`` returns once the handshake arrived (the server has set up the
    subscription); ``await sub.ended()`` returns the status that ended it (None for OK).
    """

    def __init__(self, client: api.ApiStub, stream: str, **kw: Any) -> None:
        kw.setdefault("start_position", api.StartPosition.EARLIEST)
        self.request = api.SubscribeRequest(stream=stream, **kw)
        self.messages: list[api.Message] = []
        self.handshake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(client))

    async def _run(self, client: api.ApiStub) -> GRPCError | None:
        try:
            async for m in client.subscribe(self.request, timeout=60):
                if not self.handshake.is_set():
                    assert m == api.Message(), "the first message is the empty handshake"
                    self.handshake.set()
                    continue
                self.messages.append(m)
                self._changed.set()
        except GRPCError as err:
            return err
        finally:
            self._changed.set()
        return None

    async def ready(self, timeout_s: float = 10) -> None:
        await asyncio.wait_for(self.handshake.wait(), timeout_s)

    async def wait_count(self, n: int, timeout_s: float = 10) -> list[api.Message]:
        async with asyncio.timeout(timeout_s):
            while len(self.messages) < n:
                if self._task.done():
                    raise AssertionError(f"subscription ended: {self._task.result()!r}")
                self._changed.clear()
                await self._changed.wait()
        return self.messages

    async def ended(self, timeout_s: float = 10) -> GRPCError | None:
        return await asyncio.wait_for(asyncio.shield(self._task), timeout_s)

    def cancel(self) -> None:
        self._task.cancel()

    @property
    def done(self) -> bool:
        return self._task.done()


@contextlib.asynccontextmanager
async def publish_async_stream(
    client: api.ApiStub, timeout_s: float = 30
) -> AsyncIterator[Stream[api.PublishRequest, api.PublishResponse]]:
    """A raw grpclib PublishAsync stream: send requests and read responses at will."""
    async with client.channel.request(
        "/proto.API/PublishAsync",
        Cardinality.STREAM_STREAM,
        api.PublishRequest,
        api.PublishResponse,
        timeout=timeout_s,
    ) as st:
        yield st


def headers_of(m: api.Message) -> dict[str, bytes]:
    return dict(m.headers)


async def fast_read(
    port: int, stream: str, count: int, *, partition: int = 0, timeout_s: float = 30
) -> list[codec.MessageFields]:
    """Subscribe from EARLIEST and decode with lb's fast codec (betterproto needs ~0.2 ms a
    message, too slow for bulk checks); returns once ``count`` messages arrived."""
    channel = Channel("127.0.0.1", port, codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    out: list[codec.MessageFields] = []
    try:
        async with channel.request(
            "/proto.API/Subscribe",
            Cardinality.UNARY_STREAM,
            api.SubscribeRequest,
            codec.RawBytes,
            timeout=timeout_s,
        ) as st:
            req = api.SubscribeRequest(
                stream=stream, partition=partition, start_position=api.StartPosition.EARLIEST
            )
            await st.send_message(req, end=True)
            assert await st.recv_message() == b"", "the handshake"
            while len(out) < count:
                data = await st.recv_message()
                assert data is not None
                out.append(codec.decode_message(data))
            await st.cancel()
    finally:
        channel.close()
    return out


async def fast_publish_async(
    port: int, stream: str, values: list[bytes], *, timeout_s: float = 60
) -> list[codec.PublishResponseFields]:
    """Publish ``values`` over one PublishAsync stream (ackPolicy LEADER, correlation id =
    index) with lb's fast codec on the client; return the responses in arrival order."""
    channel = Channel("127.0.0.1", port, codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    out: list[codec.PublishResponseFields] = []
    try:
        async with channel.request(
            "/proto.API/PublishAsync",
            Cardinality.STREAM_STREAM,
            codec.RawBytes,
            codec.RawBytes,
            timeout=timeout_s,
        ) as st:

            async def receive() -> None:
                while len(out) < len(values):
                    data = await st.recv_message()
                    assert data is not None
                    out.append(codec.decode_publish_response(data))

            await st.send_request()
            receiver = asyncio.ensure_future(receive())
            for i, value in enumerate(values):
                fields = codec.PublishRequestFields(
                    stream=stream, value=value, correlation_id=str(i)
                )
                await st.send_message(codec.encode_publish_request(fields))
            await receiver
            await st.end()
            assert await st.recv_message() is None
    finally:
        channel.close()
    return out


async def with_client(port: int, fn: Callable[[api.ApiStub], Awaitable[Any]]) -> Any:
    """Run ``fn`` with a client of the server on ``port`` (10 s default deadline)."""
    channel = Channel("127.0.0.1", port)
    try:
        return await fn(api.ApiStub(channel, timeout=10))
    finally:
        channel.close()


def restart(proc: LbProcess, sig: int = signal.SIGTERM) -> LbProcess:
    """Stop ``proc`` with ``sig`` and start it again on the same data dir and port."""
    proc.signal(sig)
    proc.wait(timeout_s=10)
    proc.stop()
    again = LbProcess(proc.data_dir, proc.port, proc.args, proc.config, proc.log_path).start()
    again.wait_serving()
    return again
