"""The record-batch format: encode, parse, verify, decode. Pure functions over bytes.

Layout (big-endian), version ``FORMAT_VERSION`` = 1::

    offset  size  field
    0       8     base_offset          int64   offset of the first record slot
    8       4     batch_length         int32   bytes after this field (total = 12 + batch_length)
    12      4     leader_epoch         int32
    16      1     version (magic)      uint8   = 1
    17      4     crc                  uint32  CRC-32C of bytes [0,17) then [21, end)
    21      2     attributes           int16   0 (no compression; reserved)
    23      4     last_offset_delta    int32   last offset = base_offset + last_offset_delta
    27      8     first_timestamp      int64   ns
    35      8     max_timestamp        int64   ns
    43      4     record_count         int32   may be < last_offset_delta + 1 after compaction
    47      ...   records

    record: body_length uint32, offset_delta uint32, timestamp_delta int64, body (16 + n bytes)

The CRC covers everything but itself (unlike Kafka, base offset and epoch are covered too: no
one rewrites them in place). Fixed-width record headers instead of Kafka's varints because in
Python one ``struct.unpack_from`` per record is much cheaper than varint loops.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from crc32c import crc32c

from lb.storage.records import Record

FORMAT_VERSION = 1
HEADER = struct.Struct(">qiiBIhiqqi")
HEADER_SIZE = HEADER.size  # 47
LENGTH_PREFIX = 12  # base_offset + batch_length
CRC_POS = 17
CRC_END = 21
RECORD = struct.Struct(">IIq")
RECORD_SIZE = RECORD.size  # 16
_HEAD = struct.Struct(">qiiB")
_CRC = struct.Struct(">I")
_TAIL = struct.Struct(">hiqqi")
_BASE_LEN = struct.Struct(">qi")


class BatchHeader:
    """Parsed fixed header of one batch."""

    __slots__ = ("attributes", "base_offset", "batch_length", "crc", "first_timestamp",
                 "last_offset_delta", "leader_epoch", "max_timestamp", "record_count",
                 "version")

    def __init__(self, t: tuple[int, ...]) -> None:
        (self.base_offset, self.batch_length, self.leader_epoch, self.version, self.crc,
         self.attributes, self.last_offset_delta, self.first_timestamp, self.max_timestamp,
         self.record_count) = t

    @property
    def size(self) -> int:
        """Total bytes of the batch on disk."""
        return LENGTH_PREFIX + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1


def encode_batch(base_offset: int, leader_epoch: int, bodies: Sequence[bytes],
                 timestamps_ns: Sequence[int] | int) -> tuple[bytes, bytes]:
    """Encode consecutive records as one batch; returns (header, records) for ``os.writev``.

    ``timestamps_ns`` is one int (all records share it, the common case at ingest) or one per
    body. Returning two pieces avoids copying the records once more.
    """
    n = len(bodies)
    assert n > 0
    pack = RECORD.pack
    parts: list[bytes] = []
    add = parts.append
    if isinstance(timestamps_ns, int):
        first_ts = max_ts = timestamps_ns
        for i, b in enumerate(bodies):
            add(pack(len(b), i, 0))
            add(b)
    else:
        first_ts = timestamps_ns[0]
        max_ts = max(timestamps_ns)
        for i, b in enumerate(bodies):
            add(pack(len(b), i, timestamps_ns[i] - first_ts))
            add(b)
    records = b"".join(parts)
    return _seal(base_offset, leader_epoch, n - 1, first_ts, max_ts, n, records), records


def encode_sparse_batch(base_offset: int, leader_epoch: int, last_offset_delta: int,
                        first_ts: int, records: Sequence[tuple[int, int, bytes]]) -> bytes:
    """A batch whose records keep given offset deltas (compaction, truncation splits).

    ``records`` are (offset_delta, timestamp_ns, body); may be empty (an empty batch keeps the
    offset range contiguous so followers and readers see no hole in the batch chain).
    """
    pack = RECORD.pack
    parts = []
    max_ts = first_ts
    for od, ts, body in records:
        parts.append(pack(len(body), od, ts - first_ts))
        parts.append(body)
        if ts > max_ts:
            max_ts = ts
    recs = b"".join(parts)
    return _seal(base_offset, leader_epoch, last_offset_delta, first_ts, max_ts, len(records),
                 recs) + recs


def _seal(base_offset: int, leader_epoch: int, last_offset_delta: int, first_ts: int,
          max_ts: int, count: int, records: bytes) -> bytes:
    head = _HEAD.pack(base_offset, HEADER_SIZE - LENGTH_PREFIX + len(records), leader_epoch,
                      FORMAT_VERSION)
    tail = _TAIL.pack(0, last_offset_delta, first_ts, max_ts, count)
    return b"".join((head, _CRC.pack(crc32c(records, crc32c(tail, crc32c(head)))), tail))


def peek_length(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(base_offset, total size) of the batch at ``pos``; needs 12 bytes."""
    base, length = _BASE_LEN.unpack_from(buf, pos)
    return base, LENGTH_PREFIX + length


def parse_header(buf: bytes | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the fixed header at ``pos`` (needs HEADER_SIZE bytes). No validation."""
    return BatchHeader(HEADER.unpack_from(buf, pos))


def header_problem(h: BatchHeader) -> str | None:
    """A reason the header cannot describe a valid batch, or None."""
    if h.version != FORMAT_VERSION:
        return f"unknown format version {h.version}"
    if h.batch_length < HEADER_SIZE - LENGTH_PREFIX:
        return f"batch length {h.batch_length} too small"
    if h.record_count < 0 or h.last_offset_delta < 0 or h.record_count > h.last_offset_delta + 1:
        return "bad record count or offset delta"
    if h.record_count * RECORD_SIZE > h.batch_length - (HEADER_SIZE - LENGTH_PREFIX):
        return "record count exceeds batch length"
    if h.base_offset < 0:
        return "negative base offset"
    return None


def crc_ok(buf: bytes | memoryview, pos: int, size: int, crc: int) -> bool:
    """Whether the batch at ``buf[pos:pos+size]`` matches its CRC."""
    mv = memoryview(buf)
    return crc32c(mv[pos + CRC_END : pos + size], crc32c(mv[pos : pos + CRC_POS])) == crc


def decode_into(buf: bytes, pos: int, h: BatchHeader, min_offset: int, max_offset: int,
                out: list[Record]) -> None:
    """Append the records of the batch at ``pos`` with min_offset <= offset <= max_offset."""
    p = pos + HEADER_SIZE
    base = h.base_offset
    ts0 = h.first_timestamp
    epoch = h.leader_epoch
    unpack = RECORD.unpack_from
    add = out.append
    if min_offset <= base and h.last_offset <= max_offset:
        for _ in range(h.record_count):
            ln, od, td = unpack(buf, p)
            p += 16
            add(Record(base + od, ts0 + td, epoch, buf[p : p + ln]))
            p += ln
        return
    for _ in range(h.record_count):
        ln, od, td = unpack(buf, p)
        p += 16
        off = base + od
        if off > max_offset:
            return
        if off >= min_offset:
            add(Record(off, ts0 + td, epoch, buf[p : p + ln]))
        p += ln


def iter_record_fields(buf: bytes, pos: int, h: BatchHeader) -> list[tuple[int, int, bytes]]:
    """(offset_delta, timestamp_ns, body) of every record of the batch at ``pos``."""
    p = pos + HEADER_SIZE
    unpack = RECORD.unpack_from
    ts0 = h.first_timestamp
    out = []
    for _ in range(h.record_count):
        ln, od, td = unpack(buf, p)
        p += 16
        out.append((od, ts0 + td, buf[p : p + ln]))
        p += ln
    return out


def records_consistent(buf: bytes, pos: int, h: BatchHeader) -> bool:
    """Whether the record headers exactly fill the batch with increasing in-range deltas."""
    p = pos + HEADER_SIZE
    end = pos + h.size
    unpack = RECORD.unpack_from
    prev = -1
    for _ in range(h.record_count):
        if p + RECORD_SIZE > end:
            return False
        ln, od, _td = unpack(buf, p)
        if od <= prev or od > h.last_offset_delta:
            return False
        prev = od
        p += RECORD_SIZE + ln
    return p == end
