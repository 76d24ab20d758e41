"""Sparse offset index and time index of one segment (in memory, mirrored to files).

Offset index file ``<base>.index``: entries ``>II`` (offset - base, byte position), one per
batch that starts at least ``interval_bytes`` after the previous entry (the first batch always
gets one). Time index file ``<base>.timeindex``: entries ``>qI`` (running max timestamp,
offset - base), added with an offset entry when the running max grew. Both are append-only.

The rule depends only on earlier batches, so the index of a prefix of a segment is a prefix of
the index of the whole segment: recovery recomputes it from the log and compares with the file.
Entries made by appends are buffered and written at sync, roll and close (not per append).
"""

from __future__ import annotations

import bisect
import os
import struct

OFFSET_ENTRY = struct.Struct(">II")
TIME_ENTRY = struct.Struct(">qI")


class SparseIndex:
    """Offset and time lookups for one segment."""

    __slots__ = ("_interval", "_pending_off", "_pending_time", "_running_max", "base_offset",
                 "offsets", "positions", "time_offsets", "timestamps")

    def __init__(self, base_offset: int, interval_bytes: int) -> None:
        self.base_offset = base_offset
        self._interval = interval_bytes
        self.offsets: list[int] = []
        self.positions: list[int] = []
        self.timestamps: list[int] = []
        self.time_offsets: list[int] = []
        self._running_max: int | None = None
        self._pending_off = bytearray()
        self._pending_time = bytearray()

    def on_batch(self, base_offset: int, position: int, max_ts: int) -> None:
        """Account for a batch appended at ``position``."""
        rm = self._running_max
        if rm is None or max_ts > rm:
            rm = self._running_max = max_ts
        positions = self.positions
        if positions and position - positions[-1] < self._interval:
            return
        rel = base_offset - self.base_offset
        self.offsets.append(base_offset)
        positions.append(position)
        self._pending_off += OFFSET_ENTRY.pack(rel, position)
        if not self.timestamps or rm > self.timestamps[-1]:
            self.timestamps.append(rm)
            self.time_offsets.append(base_offset)
            self._pending_time += TIME_ENTRY.pack(rm, rel)

    def lookup(self, offset: int) -> int:
        """Byte position of the last indexed batch starting at or before ``offset`` (else 0)."""
        i = bisect.bisect_right(self.offsets, offset)
        return self.positions[i - 1] if i else 0

    def lookup_time(self, timestamp_ns: int) -> int:
        """An offset from which to scan for the first record with timestamp >= the target.

        Every record before the returned offset has a smaller timestamp.
        """
        i = bisect.bisect_left(self.timestamps, timestamp_ns)
        return self.time_offsets[i - 1] if i else self.base_offset

    def offset_bytes(self) -> bytes:
        rel = self.base_offset
        return b"".join(OFFSET_ENTRY.pack(o - rel, p)
                        for o, p in zip(self.offsets, self.positions, strict=True))

    def time_bytes(self) -> bytes:
        rel = self.base_offset
        return b"".join(TIME_ENTRY.pack(t, o - rel)
                        for t, o in zip(self.timestamps, self.time_offsets, strict=True))

    def flush(self, offset_path: str, time_path: str) -> None:
        """Append buffered entries to the index files."""
        if self._pending_off:
            _append(offset_path, self._pending_off)
            self._pending_off = bytearray()
        if self._pending_time:
            _append(time_path, self._pending_time)
            self._pending_time = bytearray()

    def write_all(self, offset_path: str, time_path: str) -> None:
        """Rewrite both files from memory (after a rebuild)."""
        _replace(offset_path, self.offset_bytes())
        _replace(time_path, self.time_bytes())
        self._pending_off = bytearray()
        self._pending_time = bytearray()

    def mark_flushed(self) -> None:
        """The files already hold every entry (checked by ``compare_files``)."""
        self._pending_off = bytearray()
        self._pending_time = bytearray()

    def pending(self) -> bool:
        return bool(self._pending_off or self._pending_time)

    def compare_files(self, offset_path: str, time_path: str) -> str:
        """'ok', 'stale' (files are a strict prefix; a crash lost buffered entries), 'missing'
        or 'corrupt', comparing the files against this (recomputed) index."""
        worst = "ok"
        for path, expected, entry in ((offset_path, self.offset_bytes(), OFFSET_ENTRY.size),
                                      (time_path, self.time_bytes(), TIME_ENTRY.size)):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                if expected:
                    return "missing"
                data = b""
            if data == expected:
                continue
            if expected.startswith(data) and len(data) % entry == 0:
                worst = "stale"
            else:
                return "corrupt"
        return worst


def _append(path: str, data: bytes | bytearray) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _replace(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_offset_index(path: str, base_offset: int) -> list[tuple[int, int]]:
    """(offset, position) entries of an index file (for tools)."""
    with open(path, "rb") as f:
        data = f.read()
    n = len(data) // OFFSET_ENTRY.size
    return [(r + base_offset, p) for r, p in OFFSET_ENTRY.iter_unpack(data[: n * 8])]


def read_time_index(path: str, base_offset: int) -> list[tuple[int, int]]:
    """(timestamp_ns, offset) entries of a time index file (for tools)."""
    with open(path, "rb") as f:
        data = f.read()
    n = len(data) // TIME_ENTRY.size
    return [(t, r + base_offset) for t, r in TIME_ENTRY.iter_unpack(data[: n * 12])]
