"""The ``proto.API`` gRPC service.

The generated ``ApiBase`` routes each RPC to a method that never sees the grpclib ``Stream``
(no deadline, metadata or peer) and answers UNIMPLEMENTED for methods not overridden. lb wraps
every handler the mapping returns so that transport-level problems get a clear status instead of
grpclib's generic "Internal Server Error" — today that is compressed requests, which grpclib
cannot decode.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from grpclib.const import Handler, Status
from grpclib.exceptions import GRPCError

from lb._proto.proto import ApiBase

COMPRESSION_UNSUPPORTED = (
    "compressed requests are not supported by this server; send messages uncompressed "
    "(grpc-encoding: identity)"
)


def guard_handler(func: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """Turn grpclib's NotImplementedError for compressed messages into UNIMPLEMENTED."""

    @functools.wraps(func)
    async def guarded(stream: Any) -> None:
        try:
            await func(stream)
        except NotImplementedError as exc:
            if "Compression" in str(exc):
                raise GRPCError(Status.UNIMPLEMENTED, COMPRESSION_UNSUPPORTED) from exc
            raise

    return guarded


def guard_mapping(mapping: dict[str, Handler]) -> dict[str, Handler]:
    """Wrap every handler of a grpclib service mapping with :func:`guard_handler`."""
    return {
        path: Handler(guard_handler(h.func), h.cardinality, h.request_type, h.reply_type)
        for path, h in mapping.items()
    }


class ApiService(ApiBase):
    """lb's implementation of Liftbridge's API. RPCs not yet built answer UNIMPLEMENTED."""

    def __mapping__(self) -> dict[str, Handler]:
        return guard_mapping(super().__mapping__())
