"""Pure request checks with Liftbridge's exact status texts, shared by the gRPC layer and the
controller.

CreateStream checks run in Liftbridge's order (API-CREATE-12): name, subject, reserved name,
then (server side) authz and the encryption precondition, then replication factor (see
``placement``) and existence (at apply). lb adds checks Liftbridge lacks (API-CREATE-13): the
partition count must be positive and bounded, and stream names must be safe as a directory
name and as a token of internal NATS subjects.
"""

from __future__ import annotations

from lb.metadata.errors import invalid_argument
from lb.metadata.model import RESERVED_STREAMS

STREAM_NAME_LENGTH_MAX = 249
"""Longest accepted stream name; keeps ``<data>/streams/<name>`` under common 255-byte limits."""

PARTITIONS_MAX = 10_000
"""Most partitions one stream may have; each is a directory and a task on every replica."""

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_SUBJECT_BLANKS = frozenset(" \t\r\n")


def normalize_create_counts(partitions: int, replication_factor: int) -> tuple[int, int]:
    """Apply CreateStream's defaults: 0 partitions means 1, replication factor 0 means 1."""
    return (partitions or 1, replication_factor or 1)


def is_valid_subject(subject: str) -> bool:
    """A NATS subject as Liftbridge accepts it (API-CREATE-4): non-empty, no whitespace, no
    empty token; wildcards ``*`` and ``>`` are allowed."""
    if not subject or any(c in _SUBJECT_BLANKS for c in subject):
        return False
    return all(subject.split("."))


def is_safe_stream_name(name: str) -> bool:
    """True when ``name`` can be used as a directory name and a NATS subject token.

    Only ASCII letters, digits, ``_`` and ``-`` are allowed, which rules out path separators,
    ``.``/``..``, NUL, whitespace and the NATS token characters ``.``, ``*`` and ``>``, while
    keeping the names clients commonly use (``foo-stream``, ``my_stream``, ``__cursors``).
    """
    return 0 < len(name) <= STREAM_NAME_LENGTH_MAX and all(c in _NAME_CHARS for c in name)


def check_stream_name(name: str) -> None:
    """Name checks for CreateStream: empty (API-CREATE-3), then unsafe (API-CREATE-13)."""
    if not name:
        raise invalid_argument("Name cannot be empty")
    if not is_safe_stream_name(name):
        raise invalid_argument(
            f"Stream name {name!r} is invalid: use 1 to {STREAM_NAME_LENGTH_MAX} ASCII letters, "
            "digits, '_' or '-'"
        )


def check_subject(subject: str) -> None:
    if not is_valid_subject(subject):
        raise invalid_argument("Subject is invalid")


def check_not_reserved(name: str) -> None:
    """Create and Delete refuse the server's own streams (API-CREATE-5, API-DELETE-2)."""
    if name in RESERVED_STREAMS:
        raise invalid_argument("Stream is reserved")


def check_partitions(partitions: int) -> None:
    """The partition count after the 0 -> 1 default must be in 1..PARTITIONS_MAX."""
    if partitions < 1:
        raise invalid_argument(f"Invalid partitions {partitions}: must be at least 1")
    if partitions > PARTITIONS_MAX:
        raise invalid_argument(f"Invalid partitions {partitions}: must be at most {PARTITIONS_MAX}")


def check_group(group: str) -> None:
    """The load-balance group is a NATS queue name, so it cannot contain whitespace."""
    if any(c in _SUBJECT_BLANKS for c in group):
        raise invalid_argument("Group is invalid")


def validate_create_stream(name: str, subject: str, partitions: int, group: str = "") -> None:
    """All request-only CreateStream checks, in Liftbridge's order (``partitions`` after the
    0 -> 1 default). Replication factor and existence depend on the cluster and are checked by
    ``placement.place_partitions`` and by ``apply``. Raises ``MetadataError``."""
    check_stream_name(name)
    check_subject(subject)
    check_not_reserved(name)
    check_partitions(partitions)
    check_group(group)
