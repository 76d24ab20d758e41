"""Reading the messages of a grpclib response stream without grpclib's per-message work.

grpclib's ``Stream.recv_message`` runs the codec, the event dispatch and counters for every
message: about half of a fast consumer's CPU (tools/bench P5). A Subscribe stream carries
hundreds of thousands of small messages a second, so the client reads the length-prefixed
messages straight from the call's HTTP/2 stream instead, which still applies flow control.
Status and trailers stay with grpclib (``recv_trailing_metadata`` after the last message).

This reaches into ``grpclib.client.Stream._stream`` (grpclib is pinned in pyproject.toml);
:func:`raw_receiver` falls back to ``recv_message`` when that is not there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

RECV_MESSAGE_BYTES_MAX = 4 * 1024 * 1024
"""gRPC's default receive limit; a larger message is a protocol error, not a message."""


class RawStreamError(Exception):
    """The response stream carried something this reader does not accept."""


def raw_receiver(call: Any) -> Callable[[], Awaitable[bytes | None]]:
    """A function returning the next message's bytes of the opened ``call``, None at the end.

    Use it after grpclib has received the response headers (after a first ``recv_message``,
    e.g. the Subscribe handshake); mixing it with ``recv_message`` afterwards is fine.
    """
    inner = getattr(call, "_stream", None)
    recv_data = getattr(inner, "recv_data", None)
    if recv_data is None:
        return call.recv_message  # type: ignore[no-any-return]

    async def recv() -> bytes | None:
        meta = await recv_data(5)
        if not meta:
            return None
        if len(meta) != 5:
            raise RawStreamError("truncated gRPC message prefix")
        if meta[0]:
            raise RawStreamError("compressed gRPC message (lb servers do not compress)")
        size = int.from_bytes(meta[1:5], "big")
        if size > RECV_MESSAGE_BYTES_MAX:
            raise RawStreamError(f"gRPC message of {size} bytes over the 4 MiB limit")
        data = await recv_data(size)
        if len(data) != size:
            raise RawStreamError("truncated gRPC message")
        return bytes(data)

    return recv
