"""lb.server.grpclib_ext against the pinned grpclib: batched writes are valid gRPC streams."""

from __future__ import annotations

from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream

from lb import codec
from lb.server import grpclib_ext

pytestmark = pytest.mark.anyio


class _Service:
    def __init__(self, batches: list[list[bytes]]) -> None:
        self.batches = batches
        self.supported: bool | None = None

    async def numbers(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        self.supported = grpclib_ext.supported(stream)
        for batch in self.batches:
            await grpclib_ext.send_messages(stream, batch)

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/t.T/Numbers": Handler(
                self.numbers, Cardinality.UNARY_STREAM, codec.RawBytes, codec.RawBytes
            )
        }


async def test_batched_messages_arrive_one_by_one() -> None:
    big = b"x" * 100_000  # larger than one HTTP/2 frame and the initial window
    batches = [[b"a"], [b"", b"b", b"cc"], [big, b"d", big], [b"e"] * 1000]
    service = _Service(batches)
    server = Server([service], codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    channel = Channel("127.0.0.1", port, codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    try:
        got = []
        async with channel.request(
            "/t.T/Numbers", Cardinality.UNARY_STREAM, codec.RawBytes, codec.RawBytes, timeout=10
        ) as st:
            await st.send_message(b"", end=True)
            while (m := await st.recv_message()) is not None:
                got.append(m)
    finally:
        channel.close()
        server.close()
        await server.wait_closed()
    assert service.supported is True, "grpclib internals changed: batching is off"
    assert got == [m for batch in batches for m in batch]


def test_frame_layout() -> None:
    assert grpclib_ext.frame([b"ab", b""]) == b"\x00\x00\x00\x00\x02ab\x00\x00\x00\x00\x00"
