"""What lb needs from grpclib beyond its public API: batched writes, and why a handler was
cancelled.

Batched writes: grpclib writes every ``send_message`` to the socket on its own: one length
prefix, one h2 DATA frame, one ``send`` system call per message. On Subscribe and PublishAsync
that per-message cost dominates (about 30 µs of syscall alone here). gRPC's body is a byte stream of
length-prefixed messages that may share DATA frames, so a batch can go out as one buffer:
grpclib's own low-level ``send_data`` still applies HTTP/2 flow control and frame-size limits.

Cancellation: grpclib cancels a handler task both when the client resets the stream (or its
deadline passes) and when the server closes. Only in the second case should the handler answer
UNAVAILABLE; :func:`cancelled_by_client` tells them apart by grpclib's per-request wrapper.

This reaches into private attributes of ``grpclib.server.Stream`` (``_stream``, the h2 stream,
its ``wrapper``, and ``_send_initial_metadata_done``). grpclib is pinned in pyproject.toml;
:func:`supported` checks the attributes, falling back to one ``send_message`` per message if a
future grpclib changes them, and tests/dataplane/test_dataplane_grpclib_ext.py fails loudly.
grpclib's per-message server events (``SendMessage``) are not fired for batched messages; lb
registers no listener for them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from grpclib.server import Stream

_PREFIX = struct.Struct(">?I")


def supported(stream: Stream[Any, Any]) -> bool:
    """Whether this grpclib stream exposes what :func:`send_messages` needs."""
    inner = getattr(stream, "_stream", None)
    return hasattr(stream, "_send_initial_metadata_done") and hasattr(inner, "send_data")


def frame(messages: Sequence[bytes]) -> bytes:
    """The gRPC wire form of ``messages``: each one prefixed by flag 0 and its length."""
    pack = _PREFIX.pack
    parts: list[bytes] = []
    append = parts.append
    for m in messages:
        append(pack(False, len(m)))
        append(m)
    return b"".join(parts)


async def send_messages(stream: Stream[Any, Any], messages: Sequence[bytes]) -> None:
    """Send ``messages`` (encoded bytes) on a server-streaming ``stream``, in one write."""
    if not messages:
        return
    if len(messages) == 1 or not supported(stream):
        for m in messages:
            await stream.send_message(m)
        return
    if not stream._send_initial_metadata_done:
        await stream.send_initial_metadata()
    await stream._stream.send_data(frame(messages))


def cancelled_by_client(stream: Stream[Any, Any]) -> bool:
    """Whether grpclib cancelled this handler because the client reset the stream or its
    deadline passed (as opposed to the server closing)."""
    wrapper = getattr(getattr(stream, "_stream", None), "wrapper", None)
    return bool(getattr(wrapper, "cancelled", False))
