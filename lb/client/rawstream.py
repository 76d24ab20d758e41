"""Reading the messages of a grpclib response stream without grpclib's per-message work.

grpclib's ``Stream.recv_message`` runs the codec, the event dispatch and counters for every
message: about half of a fast consumer's CPU (tools/bench P5). A Subscribe stream carries
hundreds of thousands of small messages a second, so the client reads the length-prefixed
messages straight from the call's HTTP/2 stream instead, which still applies flow control.
Status and trailers stay with grpclib (``recv_trailing_metadata`` after the last message).

This reaches into ``grpclib.client.Stream._stream`` (grpclib is pinned in pyproject.toml);
:func:`raw_receiver` falls back to ``recv_message`` when that is not there.
:func:`batch_receiver` goes one step further: it takes every byte the HTTP/2 stream has already
received out of grpclib's receive buffer (``Buffer._acked`` / ``_unacked``, the same steps as
``Buffer.read``) and splits all complete messages at once, so a DATA frame of sixty Subscribe
messages costs one call instead of a hundred and twenty. It falls back to one message per call
(:func:`raw_receiver`) when grpclib's buffer does not look as expected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

try:  # the pinned grpclib's receive-buffer entry; absent elsewhere -> no batching
    from grpclib.protocol import AckedData
except ImportError:  # pragma: no cover - another grpclib
    AckedData = None

from lb.codec import GRPC_MESSAGE_BYTES_MAX


class RawStreamError(Exception):
    """The response stream carried something this reader does not accept."""


def _message_size(prefix: bytes, pos: int) -> int:
    """The length in the 5-byte gRPC message prefix at ``pos``, checked."""
    if prefix[pos]:
        raise RawStreamError("compressed gRPC message (lb servers do not compress)")
    size = int.from_bytes(prefix[pos + 1 : pos + 5], "big")
    if size > GRPC_MESSAGE_BYTES_MAX:
        raise RawStreamError(f"gRPC message of {size} bytes over the 4 MiB limit")
    return size


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
        size = _message_size(meta, 0)
        data = await recv_data(size)
        if len(data) != size:
            raise RawStreamError("truncated gRPC message")
        return bytes(data)

    return recv


def _batching_supported(inner: Any) -> bool:
    buffer = getattr(inner, "buffer", None)
    return (
        AckedData is not None
        and buffer is not None
        and all(
            hasattr(buffer, name) for name in ("_acked", "_acked_size", "_unacked", "_ack_callback")
        )
    )


def batch_receiver(call: Any) -> Callable[[], Awaitable[list[bytes] | None]]:
    """A function returning the next messages of the opened ``call``: every complete message
    already received (waiting for at least one), or None at the end of the stream."""
    inner = getattr(call, "_stream", None)
    one = raw_receiver(call)
    if not _batching_supported(inner):

        async def single() -> list[bytes] | None:
            m = await one()
            return None if m is None else [m]

        return single
    buffer = inner.buffer

    def drain() -> list[bytes]:
        """Complete messages from what is buffered; the incomplete rest stays buffered."""
        unacked = buffer._unacked
        while not unacked.empty():
            item = unacked.get_nowait()
            if not item.ack_size:  # the end-of-stream marker: leave it for the next read
                unacked.put_nowait(item)  # (queue order: nothing can follow it)
                break
            buffer._acked.append(AckedData(memoryview(item.data), item.data_size))
            buffer._acked_size += item.data_size
            buffer._ack_callback(item.ack_size)  # flow control, as Buffer.read does
        if buffer._acked_size < 5:
            return []
        data = b"".join(chunk.data for chunk in buffer._acked)
        buffer._acked.clear()
        out: list[bytes] = []
        pos = 0
        end = len(data)
        while end - pos >= 5:
            size = _message_size(data, pos)
            if end - pos - 5 < size:
                break
            out.append(data[pos + 5 : pos + 5 + size])
            pos += 5 + size
        rest = end - pos
        buffer._acked_size = rest
        if rest:
            buffer._acked.append(AckedData(memoryview(data)[pos:], rest))
        return out

    async def recv() -> list[bytes] | None:
        batch = drain()
        if batch:
            return batch
        first = await one()  # waits; handles the end of the stream and truncation
        if first is None:
            return None
        return [first, *drain()]

    return recv
