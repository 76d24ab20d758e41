"""Typed exceptions for the lb client, one per failure a caller may want to branch on.

Why: Liftbridge reports every failure as a gRPC status code plus a fixed text (WIRE-3), and a
few codes carry several meanings that only the text tells apart (FailedPrecondition is both
"not the leader" and "readonly partition"). This module is the single place that reads those
texts, so the rest of the client and its users branch on exception types. Every exception
keeps the original ``status`` and ``message``.
"""

from __future__ import annotations

import asyncio

from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from lb.codec import PublishAsyncErrorCode

__all__ = [
    "DeadlineExceededError",
    "EndOfPartitionError",
    "FailedPreconditionError",
    "IncorrectOffsetError",
    "InvalidArgumentError",
    "LbError",
    "MessageTooLargeError",
    "NoMetadataLeaderError",
    "NoSuchPartitionError",
    "NoSuchStreamError",
    "NotFoundError",
    "NotLeaderError",
    "PartitionPausedError",
    "ReadonlyPartitionError",
    "StreamDeletedError",
    "StreamExistsError",
    "UnavailableError",
    "UnimplementedError",
    "error_from_async_code",
    "error_from_exception",
    "error_from_status",
]


class LbError(Exception):
    """Any failure reported by an lb (or Liftbridge) server, or of the connection to it.

    ``status`` is the gRPC status (``grpclib.const.Status``, numbered as in gRPC) and
    ``message`` the server's text, verbatim.
    """

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message


class NotFoundError(LbError):
    """NotFound: a stream or partition the request names does not exist."""


class NoSuchStreamError(NotFoundError):
    """The stream does not exist ("no such stream: X", "stream does not exist")."""


class NoSuchPartitionError(NotFoundError):
    """The partition does not exist ("no such partition: N", "No such partition")."""


class StreamDeletedError(NotFoundError):
    """The stream was deleted while subscribed ("commit log was deleted", API-DELETE-3)."""


class StreamExistsError(LbError):
    """AlreadyExists: CreateStream with a name that is taken (API-CREATE-2)."""


class InvalidArgumentError(LbError):
    """InvalidArgument: the request itself is wrong (bad subject, bad replication factor...)."""


class MessageTooLargeError(InvalidArgumentError):
    """The message exceeds the server's replication size limit (ACK-5)."""


class FailedPreconditionError(LbError):
    """FailedPrecondition that is not one of the more specific cases below."""


class NotLeaderError(FailedPreconditionError):
    """The server is not the partition leader (SUB-1, PMETA-1); clients refresh and retry."""


class ReadonlyPartitionError(FailedPreconditionError):
    """Publish to a readonly partition (RO-2), or a subscription reached its end (RO-4)."""


class PartitionPausedError(FailedPreconditionError):
    """The partition was paused under a subscription ("commit log was closed", PAUSE-6)."""


class EndOfPartitionError(LbError):
    """ResourceExhausted: a subscription reached its stop position ("Stop offset reached") or
    the partition was empty for STOP_LATEST ("Stream is empty"). A normal end, not a fault."""


class IncorrectOffsetError(LbError):
    """The optimistic-concurrency check failed: expectedOffset was not the next offset (OCC-1)."""


class DeadlineExceededError(LbError):
    """The call (or the wait for its ack) took longer than its deadline."""


class UnavailableError(LbError):
    """The server cannot be reached, or it went away mid-call."""


class NoMetadataLeaderError(LbError):
    """Internal "no known metadata leader": the cluster is electing one; worth retrying."""


class UnimplementedError(LbError):
    """The server does not implement the RPC (lb answers this for cursors and groups)."""


_BY_STATUS: dict[Status, type[LbError]] = {
    Status.ALREADY_EXISTS: StreamExistsError,
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.FAILED_PRECONDITION: FailedPreconditionError,
    Status.RESOURCE_EXHAUSTED: EndOfPartitionError,
    Status.DEADLINE_EXCEEDED: DeadlineExceededError,
    Status.UNAVAILABLE: UnavailableError,
    Status.UNIMPLEMENTED: UnimplementedError,
}


def _kind(status: Status, message: str) -> type[LbError]:
    text = message.lower()
    if status is Status.NOT_FOUND:
        if "commit log was deleted" in text:
            return StreamDeletedError
        if "partition" in text:
            return NoSuchPartitionError
        return NoSuchStreamError
    if status is Status.FAILED_PRECONDITION:
        if "readonly" in text:
            return ReadonlyPartitionError
        if "leader" in text:
            return NotLeaderError
        if "commit log was closed" in text:
            return PartitionPausedError
        return FailedPreconditionError
    if status is Status.RESOURCE_EXHAUSTED and "readonly" in text:
        return ReadonlyPartitionError
    if status is Status.INVALID_ARGUMENT and "exceeds" in text:
        return MessageTooLargeError
    if "incorrect expected offset" in text:
        return IncorrectOffsetError
    if status is Status.INTERNAL and text == "no known metadata leader":
        return NoMetadataLeaderError
    return _BY_STATUS.get(status, LbError)


def error_from_status(status: Status, message: str | None) -> LbError:
    """The typed exception for a gRPC status and its text."""
    text = message or ""
    return _kind(status, text)(status, text)


_ASYNC_STATUS = {
    PublishAsyncErrorCode.UNKNOWN: Status.UNKNOWN,
    PublishAsyncErrorCode.BAD_REQUEST: Status.INVALID_ARGUMENT,
    PublishAsyncErrorCode.NOT_FOUND: Status.NOT_FOUND,
    PublishAsyncErrorCode.INTERNAL: Status.INTERNAL,
    PublishAsyncErrorCode.READONLY: Status.FAILED_PRECONDITION,
    PublishAsyncErrorCode.INCORRECT_OFFSET: Status.UNKNOWN,
    PublishAsyncErrorCode.ENCRYPTION_FAILED: Status.INTERNAL,
    PublishAsyncErrorCode.PERMISSION_DENIED: Status.PERMISSION_DENIED,
}


def error_from_async_code(code: int, message: str) -> LbError:
    """The typed exception for a PublishAsync ``asyncError`` (PUBA-2), with the status a unary
    Publish would have returned for the same failure."""
    try:
        status = _ASYNC_STATUS[PublishAsyncErrorCode(code)]
    except ValueError:
        status = Status.UNKNOWN
    if code == PublishAsyncErrorCode.READONLY and "readonly" not in message.lower():
        return ReadonlyPartitionError(status, message)
    if code == PublishAsyncErrorCode.INCORRECT_OFFSET:
        return IncorrectOffsetError(status, message)
    return error_from_status(status, message)


def error_from_exception(exc: BaseException) -> LbError | None:
    """Translate a grpclib or transport exception; None when ``exc`` is none of those."""
    if isinstance(exc, LbError):
        return exc
    if isinstance(exc, GRPCError):
        return error_from_status(exc.status, exc.message)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):  # before OSError: a subclass
        return DeadlineExceededError(Status.DEADLINE_EXCEEDED, "deadline exceeded")
    if isinstance(exc, StreamTerminatedError | ProtocolError | ConnectionError | OSError):
        return UnavailableError(Status.UNAVAILABLE, f"connection failed: {exc}")
    return None
