"""Crossing between the asyncio side (grpclib, nats-py) and the Trio side, once per batch.

Everything runs on one thread: trio-asyncio runs the asyncio loop inside Trio. So asyncio code
may call *synchronous* methods of Trio-owned objects directly, and Trio code may call
synchronous asyncio APIs (``Future.set_result``, ``Event.set``) directly. Only awaiting needs a
bridge, and the awaited thing is chosen so that it is cheap (design.md, stack-feasibility.md):

- asyncio -> Trio work: :class:`TrioWorkQueue` — the asyncio side ``send_nowait``s a job with an
  asyncio future into a bounded Trio channel and awaits the future; a Trio task drains jobs in
  batches and resolves the futures. About 22 µs a round trip against ~50 µs for ``trio_as_aio``.
- NATS callbacks -> Trio: :class:`IngestChannel` — ``offer`` from the nats-py callback; when the
  bounded channel is full the callback awaits an asyncio event that the Trio consumer sets after
  each drained batch, which parks nats-py's per-subscription task (backpressure, no hop).
- Trio -> asyncio waiters: :class:`AioNotifier` — asyncio code awaits a future for "something
  changed"; the Trio side resolves all pending ones with one call per batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import trio

T = TypeVar("T")


def resolve(fut: asyncio.Future[Any], value: Any) -> None:
    """Set a future's result unless its waiter already gave up (cancelled)."""
    if not fut.done():
        fut.set_result(value)


def fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Set a future's exception unless its waiter already gave up."""
    if not fut.done():
        fut.set_exception(exc)


class AioNotifier:
    """Lets asyncio code wait for a change that Trio code announces, without any hop."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def wait(self) -> asyncio.Future[None]:
        """A future resolved at the next :meth:`notify` (call from asyncio code)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def notify(self) -> None:
        """Wake every current waiter (call from Trio or asyncio code)."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            resolve(fut, None)

    def close(self, exc: BaseException) -> None:
        """Fail every current waiter with ``exc`` (e.g. the partition stopped)."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            fail(fut, exc)


class TrioWorkQueue:
    """Run async Trio functions on behalf of asyncio callers, with a bounded queue.

    ``await queue.call(fn, *args)`` from asyncio code runs ``await fn(*args)`` in a Trio task
    that :meth:`run` owns (several at once, up to ``concurrency_max``), and returns its result
    or raises its exception.
    """

    def __init__(self, capacity: int = 1024, concurrency_max: int = 64) -> None:
        self._send, self._recv = trio.open_memory_channel[
            tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], asyncio.Future[Any]]
        ](capacity)
        self._limit = trio.Semaphore(concurrency_max)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            self._send.send_nowait((fn, args, fut))
        except trio.WouldBlock:
            raise OverloadedError("server busy: too many requests in flight") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ShuttingDownError("server is shutting down") from None
        return await fut

    async def run(self) -> None:
        async with trio.open_nursery() as nursery, self._recv:
            async for fn, args, fut in self._recv:
                if fut.done():
                    continue
                await self._limit.acquire()
                nursery.start_soon(self._one, fn, args, fut)

    async def _one(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], fut: asyncio.Future[Any]
    ) -> None:
        try:
            result = await fn(*args)
        except trio.Cancelled:
            fail(fut, ShuttingDownError("server is shutting down"))
            raise
        except Exception as exc:
            fail(fut, exc)
        else:
            resolve(fut, result)
        finally:
            self._limit.release()


class OverloadedError(RuntimeError):
    """A bounded queue is full; the caller should retry later."""


class ShuttingDownError(RuntimeError):
    """The Trio side is gone or going."""


class IngestChannel(Generic[T]):
    """A bounded channel from nats-py callbacks (asyncio) into one Trio consumer, in batches.

    Bounded in items (``capacity``) and in bytes (``bytes_max``, by the sizes the producer
    declares): an offer waits while either bound is reached, except that an empty channel
    always takes one item, however large.
    """

    def __init__(self, capacity: int, bytes_max: int = 1 << 62) -> None:
        self._send, self._recv = trio.open_memory_channel[T](capacity)
        self._space = asyncio.Event()
        self._space.set()
        self._bytes_max = bytes_max
        self._bytes = 0
        self._sizes: deque[int] = deque()

    @property
    def bytes_queued(self) -> int:
        return self._bytes

    def _try_send(self, item: T, size: int) -> bool:
        if self._sizes and self._bytes + size > self._bytes_max:
            return False
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            return False
        self._sizes.append(size)
        self._bytes += size
        return True

    async def offer(self, item: T, size: int = 0) -> None:
        """Called from asyncio code (a nats-py callback). Waits only while the channel is full."""
        while not self._try_send(item, size):
            self._space.clear()
            await self._space.wait()

    def offer_nowait(self, item: T, size: int = 0) -> bool:
        """Non-blocking offer; False when full (the caller drops or nacks)."""
        return self._try_send(item, size)

    async def receive_batch(self, max_items: int) -> list[T]:
        """Trio side: wait for one item, then drain up to ``max_items`` without waiting."""
        batch = [await self._recv.receive()]
        while len(batch) < max_items:
            try:
                batch.append(self._recv.receive_nowait())
            except trio.WouldBlock:
                break
        sizes = self._sizes
        for _ in batch:
            self._bytes -= sizes.popleft()
        self._space.set()
        return batch

    def close(self) -> None:
        self._send.close()
        self._space.set()
