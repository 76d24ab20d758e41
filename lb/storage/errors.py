"""Exceptions raised by the storage engine.

One small taxonomy so that callers (the writer, the replication fetch loop, the API layer) can
tell "the caller asked for something impossible" from "the disk holds bad bytes".
"""

from __future__ import annotations


class LogError(Exception):
    """Base class of every storage error."""


class LogClosedError(LogError):
    """The log was closed; no further operation is possible."""


class CorruptLogError(LogError):
    """Bytes on disk fail validation somewhere other than a recoverable tail.

    ``segment`` is the path of the segment file, ``offset`` the first offset that could not be
    read (the expected offset of the bad batch), ``position`` its byte position in the file.
    Raised on open for corruption in the middle of the log and on reads when a CRC fails, so a
    reader never receives corrupt data.
    """

    def __init__(self, segment: str, offset: int, position: int, reason: str) -> None:
        super().__init__(f"corrupt log segment {segment} at offset {offset} "
                         f"(byte {position}): {reason}")
        self.segment = segment
        self.offset = offset
        self.position = position
        self.reason = reason


class InvalidBatchError(LogError):
    """A raw batch handed to ``append_raw`` is malformed or fails its CRC."""


class OffsetMismatchError(LogError):
    """A raw batch does not start at the log's next offset."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"raw batch starts at offset {got}, log expects {expected}")
        self.expected = expected
        self.got = got


class EpochRegressionError(LogError):
    """An append carries a leader epoch lower than the latest one the log has seen."""

    def __init__(self, latest: int, got: int) -> None:
        super().__init__(f"leader epoch {got} is below the latest epoch {latest}")
        self.latest = latest
        self.got = got
