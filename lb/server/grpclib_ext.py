"""What lb needs from grpclib beyond its public API: batched writes, unary replies in one
write, and why a handler was cancelled.

Batched writes: grpclib writes every ``send_message`` to the socket on its own: one length
prefix, one h2 DATA frame, one ``send`` system call per message. On Subscribe and PublishAsync
that per-message cost dominates (about 30 µs of syscall alone here). gRPC's body is a byte stream of
length-prefixed messages that may share DATA frames, so a batch can go out as one buffer:
grpclib's own low-level ``send_data`` still applies HTTP/2 flow control and frame-size limits.

Unary replies: grpclib writes a unary reply's headers, message and trailers with one system
call each; :func:`send_unary_response` makes them one write (same bytes), for that RPC only.

Cancellation: grpclib cancels a handler task both when the client resets the stream (or its
deadline passes) and when the server closes. Only in the second case should the handler answer
UNAVAILABLE; :func:`cancelled_by_client` tells them apart by grpclib's per-request wrapper.

This reaches into private attributes of ``grpclib.server.Stream`` (``_stream``, the h2 stream,
its ``wrapper``, the ``_send_*_done`` flags, ``_dispatch``, and for unary replies the h2
connection and transport behind the stream). grpclib is pinned in pyproject.toml;
:func:`supported` checks the attributes, falling back to one ``send_message`` per message if a
future grpclib changes them, and tests/dataplane/test_dataplane_grpclib_ext.py fails loudly.
grpclib's per-message server events (``SendMessage``) are not fired for batched messages; lb
registers no listener for them.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from typing import Any

from grpclib.const import Status
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


def unary_fast_path(stream: Stream[Any, Any], size: int) -> bool:
    """Whether :func:`send_unary_response` can write a reply of ``size`` framed bytes at once:
    nothing sent yet, no server event listeners, the connection writable, and the reply within
    the stream's flow-control window and one DATA frame (so no write would have to wait)."""
    try:
        inner = stream._stream
        h2 = inner._h2_connection
        return (
            not stream._cardinality.server_streaming
            and not stream._send_initial_metadata_done
            and not stream._send_message_done
            and not stream._send_trailing_metadata_done
            and not any(stream._dispatch._listeners.values())
            and inner.connection.write_ready.is_set()
            and not inner._transport.is_closing()
            and inner.id in h2.streams
            and size <= h2.max_outbound_frame_size
            and size <= h2.local_flow_control_window(inner.id)
        )
    except Exception:  # another grpclib/h2 than the pinned one, or a stream being torn down
        return False


async def send_unary_response(stream: Stream[Any, Any], message: bytes) -> None:
    """End a unary RPC with ``message`` (encoded bytes) and status OK, in one transport write.

    grpclib writes the response headers, the message and the trailers separately: three
    ``send`` system calls per unary call, 22% of the server's CPU on unary Publish (tools/bench
    P3 profile). The bytes are the same (one HPACK context, same order); only the writes are
    coalesced, for this RPC alone (a connection-wide cork cost PublishAsync 10%). Falls back to
    grpclib's own calls when :func:`unary_fast_path` says no.
    """
    data = frame((message,))
    if not unary_fast_path(stream, len(data)):
        await stream.send_message(message)
        await stream.send_trailing_metadata()
        return
    inner = stream._stream
    h2 = inner._h2_connection
    conn = inner.connection
    sid = inner.id
    # No await from here on: nothing else can write to the connection in between.
    h2.send_headers(sid, [(":status", "200"), ("content-type", stream._content_type)])
    stream._send_initial_metadata_done = True
    h2.send_data(sid, data)
    h2.send_headers(sid, [("grpc-status", str(Status.OK.value))], end_stream=True)
    inner._transport.write(h2.data_to_send())
    # grpclib's bookkeeping for the three sends (keepalive and channelz counters).
    conn.headers_send_process()
    stream._send_message_done = True
    stream._messages_sent += 1
    conn.messages_sent += 1
    conn.last_message_sent = time.monotonic()
    inner.data_sent += len(data)
    conn.data_sent += len(data)
    conn.data_send_process()
    conn.headers_send_process()
    stream._send_trailing_metadata_done = True


def cancelled_by_client(stream: Stream[Any, Any]) -> bool:
    """Whether grpclib cancelled this handler because the client reset the stream or its
    deadline passed (as opposed to the server closing)."""
    wrapper = getattr(getattr(stream, "_stream", None), "wrapper", None)
    return bool(getattr(wrapper, "cancelled", False))
