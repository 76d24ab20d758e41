"""The metadata error taxonomy.

Metadata failures are part of Liftbridge's wire contract: clients branch on the gRPC code and
some match the exact text (WIRE-3), so every failure carries both. The codes are named after
gRPC status codes; the one place that maps them onto grpclib statuses is the server's API layer
(``ErrorCode.grpc_code`` gives the number to make that mapping trivial).
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """gRPC status names used by metadata operations."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    INTERNAL = "INTERNAL"
    # Errors relayed from elsewhere that are not statuses become Unknown (WIRE-4).
    UNKNOWN = "UNKNOWN"

    @property
    def grpc_code(self) -> int:
        """The numeric gRPC status code (same numbers as ``grpclib.Status``)."""
        return _GRPC_CODES[self]

    @classmethod
    def from_grpc_code(cls, code: int) -> ErrorCode:
        """The code for a gRPC status number; numbers outside the taxonomy become UNKNOWN."""
        return _BY_GRPC_CODE.get(code, cls.UNKNOWN)


_GRPC_CODES: dict[ErrorCode, int] = {
    ErrorCode.UNKNOWN: 2,
    ErrorCode.INVALID_ARGUMENT: 3,
    ErrorCode.NOT_FOUND: 5,
    ErrorCode.ALREADY_EXISTS: 6,
    ErrorCode.FAILED_PRECONDITION: 9,
    ErrorCode.INTERNAL: 13,
}
_BY_GRPC_CODE: dict[int, ErrorCode] = {v: k for k, v in _GRPC_CODES.items()}


class MetadataError(Exception):
    """A metadata request or op failed; ``message`` is the client-visible status text."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"MetadataError({self.code.value}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetadataError):
            return NotImplemented
        return (self.code, self.message) == (other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


# Status texts shared by several operations (kept verbatim from Liftbridge, see the spec ids).
STREAM_EXISTS = "stream already exists"  # API-CREATE-2
STREAM_DOES_NOT_EXIST = "stream does not exist"  # API-DELETE-1, PAUSE-1
STREAM_NOT_FOUND = "stream not found"  # PAUSE-1 / RO-1 with an empty partition list
PARTITION_DOES_NOT_EXIST = "partition does not exist"  # PAUSE-1, RO-1
NO_ISR_CANDIDATES = "No ISR candidates"  # REPL-4


def invalid_argument(message: str) -> MetadataError:
    return MetadataError(ErrorCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> MetadataError:
    return MetadataError(ErrorCode.NOT_FOUND, message)


def already_exists(message: str) -> MetadataError:
    return MetadataError(ErrorCode.ALREADY_EXISTS, message)


def failed_precondition(message: str) -> MetadataError:
    return MetadataError(ErrorCode.FAILED_PRECONDITION, message)


def internal(message: str) -> MetadataError:
    return MetadataError(ErrorCode.INTERNAL, message)


def no_such_partition(stream: str, partition: int) -> MetadataError:
    """The text Liftbridge uses for ISR, leader and report requests on a missing partition."""
    return failed_precondition(f"No such partition [stream={stream}, partition={partition}]")


def leader_generation_mismatch(
    current_leader: str, current_epoch: int, got_leader: str, got_epoch: int
) -> MetadataError:
    """A request names a leader generation that is no longer current (REPL-4)."""
    return failed_precondition(
        f"Leader generation mismatch, current leader: {current_leader} epoch: {current_epoch}, "
        f"got leader: {got_leader} epoch: {got_epoch}"
    )
