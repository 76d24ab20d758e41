"""The raw response-stream reader against a real grpclib server: the same messages as
grpclib's ``recv_message``, the status still raised at the end, and bad framing refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from lb.client.rawstream import RawStreamError, batch_receiver, raw_receiver
from lb.codec import PassthroughCodec, RawBytes
from lb.server.grpclib_ext import send_messages

MESSAGES = [b"", b"a", b"x" * 70_000, bytes(range(256)) * 3]


class _Service:
    def __init__(self, status: Status) -> None:
        self.status = status

    async def stream(self, stream: Any) -> None:
        await stream.recv_message()
        await stream.send_message(b"handshake")
        await send_messages(stream, MESSAGES)  # batched: several messages per DATA frame
        for m in MESSAGES:
            await stream.send_message(m)
        if self.status is not Status.OK:
            raise GRPCError(self.status, "the end")

    def __mapping__(self) -> dict[str, Handler]:
        return {"/t.T/S": Handler(self.stream, Cardinality.UNARY_STREAM, RawBytes, RawBytes)}


async def _read(status: Status, how: str = "raw") -> tuple[list[bytes], Exception | None]:
    server = Server([_Service(status)], codec=PassthroughCodec())  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    channel = Channel("127.0.0.1", port, codec=PassthroughCodec())  # type: ignore[arg-type]
    got: list[bytes] = []
    error: Exception | None = None
    try:
        async with channel.request("/t.T/S", Cardinality.UNARY_STREAM, RawBytes, RawBytes) as call:
            await call.send_message(b"", end=True)
            assert await call.recv_message() == b"handshake"
            if how == "batch":
                recv_batch = batch_receiver(call)
                while (ms := await recv_batch()) is not None:
                    assert ms
                    got.extend(ms)
            else:
                recv = call.recv_message if how == "grpclib" else raw_receiver(call)
                while (m := await recv()) is not None:
                    got.append(m)
            try:
                await call.recv_trailing_metadata()
            except GRPCError as exc:
                error = exc
    finally:
        channel.close()
        server.close()
        await server.wait_closed()
    return got, error


@pytest.mark.parametrize("how", ["raw", "batch"])
def test_readers_read_what_recv_message_reads(how: str) -> None:
    got, err = asyncio.run(_read(Status.OK, how))
    plain, err2 = asyncio.run(_read(Status.OK, "grpclib"))
    assert got == plain == MESSAGES * 2 and err is None and err2 is None


@pytest.mark.parametrize("how", ["raw", "batch"])
def test_status_after_the_messages_is_still_raised(how: str) -> None:
    got, err = asyncio.run(_read(Status.RESOURCE_EXHAUSTED, how))
    assert got == MESSAGES * 2
    assert isinstance(err, GRPCError) and err.status is Status.RESOURCE_EXHAUSTED


class _ManyService:
    """Many small messages in batched writes: DATA frames end in the middle of messages."""

    async def stream(self, stream: Any) -> None:
        await stream.recv_message()
        await stream.send_message(b"handshake")
        for start in range(0, 20_000, 997):
            stop = min(start + 997, 20_000)
            await send_messages(stream, [b"%d" % i * 30 for i in range(start, stop)])

    def __mapping__(self) -> dict[str, Handler]:
        return {"/t.T/S": Handler(self.stream, Cardinality.UNARY_STREAM, RawBytes, RawBytes)}


def test_batch_receiver_across_frame_boundaries() -> None:
    async def run() -> tuple[list[bytes], int]:
        server = Server([_ManyService()], codec=PassthroughCodec())  # type: ignore[arg-type]
        await server.start("127.0.0.1", 0)
        port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        channel = Channel("127.0.0.1", port, codec=PassthroughCodec())  # type: ignore[arg-type]
        got: list[bytes] = []
        calls = 0
        try:
            async with channel.request(
                "/t.T/S", Cardinality.UNARY_STREAM, RawBytes, RawBytes
            ) as call:
                await call.send_message(b"", end=True)
                await call.recv_message()
                recv = batch_receiver(call)
                while (ms := await recv()) is not None:
                    got.extend(ms)
                    calls += 1
        finally:
            channel.close()
            server.close()
            await server.wait_closed()
        return got, calls

    got, calls = asyncio.run(run())
    assert got == [b"%d" % i * 30 for i in range(20_000)]
    assert calls < len(got) / 5  # messages really came in batches


class _FakeH2Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def recv_data(self, size: int) -> bytes:
        out, self.data = self.data[:size], self.data[size:]
        return out


class _FakeCall:
    def __init__(self, data: bytes) -> None:
        self._stream = _FakeH2Stream(data)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x01\x00\x00\x00\x01x", "compressed"),
        (b"\x00\x7f\x00\x00\x00", "over the 4 MiB limit"),
        (b"\x00\x00\x00\x00\x05ab", "truncated gRPC message"),
        (b"\x00\x00", "truncated gRPC message prefix"),
    ],
)
def test_bad_framing_is_refused(data: bytes, text: str) -> None:
    recv = raw_receiver(_FakeCall(data))
    with pytest.raises(RawStreamError, match=text):
        asyncio.run(recv())


def test_falls_back_without_grpclib_internals() -> None:
    class Plain:
        async def recv_message(self) -> bytes:
            return b"m"

    call = Plain()
    assert raw_receiver(call) == call.recv_message
    assert asyncio.run(batch_receiver(call)()) == [b"m"]
