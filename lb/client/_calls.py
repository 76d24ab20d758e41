"""Low-level gRPC calls on a grpclib channel, shared by the client's parts.

Every channel uses :class:`lb.codec.PassthroughCodec`: control-plane requests and replies are
the generated betterproto classes, while the hot paths (Publish, PublishAsync, Subscribe) send
and receive raw bytes that ``lb.codec`` encodes and decodes (design.md: betterproto costs
~100-200 us per message there).
"""

from __future__ import annotations

import contextlib
from typing import Any

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status

from lb.client.errors import UnavailableError
from lb.client.metadata import parse_address
from lb.codec import PassthroughCodec, RawBytes

PATH_CREATE_STREAM = "/proto.API/CreateStream"
PATH_DELETE_STREAM = "/proto.API/DeleteStream"
PATH_PAUSE_STREAM = "/proto.API/PauseStream"
PATH_SET_STREAM_READONLY = "/proto.API/SetStreamReadonly"
PATH_FETCH_METADATA = "/proto.API/FetchMetadata"
PATH_FETCH_PARTITION_METADATA = "/proto.API/FetchPartitionMetadata"
PATH_PUBLISH = "/proto.API/Publish"
PATH_PUBLISH_ASYNC = "/proto.API/PublishAsync"
PATH_PUBLISH_TO_SUBJECT = "/proto.API/PublishToSubject"
PATH_SUBSCRIBE = "/proto.API/Subscribe"


def open_channel(address: str) -> Channel:
    """A lazily connecting grpclib channel to ``host:port`` (it connects on the first call)."""
    host, port = parse_address(address)
    return Channel(host, port, codec=PassthroughCodec())


async def unary(
    channel: Channel, path: str, request: Any, reply_type: Any, timeout_s: float | None
) -> Any:
    """One unary call. ``request`` may be a betterproto message or pre-encoded bytes; a
    ``reply_type`` of :class:`RawBytes` returns the reply undecoded."""
    request_type = RawBytes if isinstance(request, bytes) else type(request)
    async with channel.request(
        path, Cardinality.UNARY_UNARY, request_type, reply_type, timeout=timeout_s
    ) as call:
        await call.send_message(request, end=True)
        reply = await call.recv_message()
    if reply is None:
        raise UnavailableError(Status.UNAVAILABLE, f"{path}: the server sent no reply")
    return reply


class _Abandoned(Exception):
    """Passed to a grpclib stream's ``__aexit__`` so it resets the HTTP/2 stream."""


async def abandon(call: Stream[Any, Any]) -> None:
    """Close a call we no longer want (the server sees a cancel); never raises."""
    exc = _Abandoned()
    with contextlib.suppress(Exception):
        await call.__aexit__(_Abandoned, exc, None)
