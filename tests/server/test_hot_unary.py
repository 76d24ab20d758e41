"""grpclib_ext.send_unary_response against the pinned grpclib: a unary reply written in one go
is the same gRPC response, byte for byte on the wire, as grpclib's three writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream

from lb import codec
from lb.server import grpclib_ext

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Echo:
    """Unary Echo: replies with the request; ``coalesce`` picks send_unary_response."""

    def __init__(self, coalesce: bool) -> None:
        self.coalesce = coalesce
        self.fast: list[bool] = []

    async def echo(self, stream: Stream[Any, Any]) -> None:
        req = await stream.recv_message()
        assert req is not None
        if self.coalesce:
            self.fast.append(grpclib_ext.unary_fast_path(stream, len(req) + 5))
            await grpclib_ext.send_unary_response(stream, req)
        else:
            await stream.send_message(req)

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/t.T/Echo": Handler(self.echo, Cardinality.UNARY_UNARY, codec.RawBytes, codec.RawBytes)
        }


async def _recording_proxy(target_port: int, record: bytearray) -> asyncio.Server:
    """A TCP proxy to ``target_port`` that records what the server sends to the client."""

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, rec: bool) -> None:
        try:
            while data := await r.read(65536):
                if rec:
                    record.extend(data)
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        finally:
            w.close()

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(cr, sw, False), pipe(sr, cw, True))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _calls(coalesce: bool, requests: list[bytes]) -> tuple[list[bytes], bytes, _Echo]:
    service = _Echo(coalesce)
    server = Server([service], codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    record = bytearray()
    proxy = await _recording_proxy(port, record)
    proxy_port = proxy.sockets[0].getsockname()[1]
    channel = Channel("127.0.0.1", proxy_port, codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    replies = []
    try:
        for req in requests:  # one at a time: the wire order is deterministic
            async with channel.request(
                "/t.T/Echo", Cardinality.UNARY_UNARY, codec.RawBytes, codec.RawBytes, timeout=10
            ) as st:
                await st.send_message(req, end=True)
                replies.append(await st.recv_message())
                await st.recv_trailing_metadata()
                assert st.trailing_metadata is not None
    finally:
        channel.close()
        server.close()
        await server.wait_closed()
        proxy.close()
        await proxy.wait_closed()
    return replies, bytes(record), service


async def test_unary_reply_in_one_write_is_the_same_response() -> None:
    # Small replies take the one-write path; 100 kB is more than one DATA frame: fallback.
    requests = [b"", b"a", b"\x0a\x03abc" * 100, b"x" * 100_000, b"b"]
    got, wire_fast, service = await _calls(True, requests)
    want, wire_plain, _ = await _calls(False, requests)
    assert got == want == requests
    assert service.fast == [True, True, True, False, True], "grpclib internals changed"
    # The server's byte stream (HEADERS, DATA, trailers; HPACK state) is unchanged.
    assert wire_fast == wire_plain
