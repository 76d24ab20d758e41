"""Host grpclib's server on the trio-asyncio loop, with the standard health service.

grpclib is asyncio-only; lb runs it on the asyncio loop that trio-asyncio provides inside the
Trio nursery tree. The server lives in a Trio task: cancelling the task closes the listener,
cancels in-flight RPCs and waits (bounded) for them to finish.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trio
import trio_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.health.check import ServiceStatus
from grpclib.health.service import OVERALL, Health
from grpclib.server import Server

from lb.codec import GRPC_MESSAGE_BYTES_MAX, PassthroughCodec

log = logging.getLogger("lb.grpc")

CLOSE_TIMEOUT_S = 2.0


class BoundedCodec(PassthroughCodec):
    """:class:`~lb.codec.PassthroughCodec` that refuses requests over the receive limit with
    grpc-go's status and text, so that clients see what a Liftbridge server would answer.

    grpclib has already read the message when the codec sees it; the limit bounds what a
    handler decodes and holds, not the HTTP/2 buffering before it.
    """

    def __init__(self, recv_bytes_max: int = GRPC_MESSAGE_BYTES_MAX) -> None:
        self.recv_bytes_max = recv_bytes_max

    def decode(self, data: bytes, message_type: Any) -> Any:
        if len(data) > self.recv_bytes_max:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({len(data)} vs. {self.recv_bytes_max})",
            )
        return super().decode(data, message_type)


class Readiness:
    """The node's health as grpc.health.v1 reports it, for "" and "proto.API".

    UNKNOWN until ``set_serving(True)``; NOT_SERVING from the start of shutdown.
    """

    def __init__(self) -> None:
        self._status = ServiceStatus()

    def set_serving(self, serving: bool) -> None:
        self._status.set(serving)

    def health_service(self, api_service: Any) -> Health:
        return Health({api_service: [self._status], OVERALL: [self._status]})


class GrpcServer:
    """One grpclib server bound to ``host:port`` (port 0 picks a free port)."""

    def __init__(self, services: Sequence[Any], host: str, port: int) -> None:
        self._services = list(services)
        self._host = host
        self._port = port
        self.bound_port = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        server = await trio_asyncio.aio_as_trio(self._start)()
        try:
            task_status.started(self.bound_port)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                server.close()
                with trio.move_on_after(CLOSE_TIMEOUT_S):
                    await trio_asyncio.aio_as_trio(server.wait_closed)()
                log.info("gRPC API stopped")

    async def _start(self) -> Server:
        server = Server(self._services, codec=BoundedCodec())
        await server.start(self._host, self._port)
        sockets = server._server.sockets if server._server else []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("gRPC API listening on %s:%d", self._host, self.bound_port)
        return server
