"""The record-batch format: encode, parse, verify, decode. Pure functions over bytes.

Layout, version ``FORMAT_VERSION`` = 2. The 47-byte header is big-endian::

    offset  size  field
    0       8     base_offset          int64   offset of the first record slot
    8       4     batch_length         int32   bytes after this field (total = 12 + batch_length)
    12      4     leader_epoch         int32
    16      1     version (magic)      uint8   = 2
    17      4     crc                  uint32  CRC-32C of bytes [0,17) then [21, end)
    21      2     attributes           int16   bits 0-2: compression (0 = none, the only one
                                               so far); bit 8: offset column; bit 9: timestamp
                                               column; other bits 0
    23      4     last_offset_delta    int32   last offset = base_offset + last_offset_delta
    27      8     first_timestamp      int64   ns
    35      8     max_timestamp        int64   ns
    43      4     record_count         int32   may be < last_offset_delta + 1 after compaction
    47      ...   records, in columns

The records are stored column by column, each column little-endian::

    lengths      record_count x uint32   body length of each record
    offsets      record_count x uint32   offset deltas, strictly increasing; only with bit 8,
                                         else the deltas are 0, 1, ..., record_count - 1
    timestamps   record_count x int64    timestamp - first_timestamp; only with bit 9, else
                                         every record has first_timestamp
    bodies       the record bodies, concatenated

Why columns: in Python the cost of a batch is the number of interpreter steps per record. Row
framing (a ``struct.pack`` per record, as in version 1) cost ~150 ns a message, as much as the
whole plain write loop it is compared with. Here encoding is ``array("I", map(len, bodies))``
plus one ``b"".join``; decoding is ``array.frombytes`` and slicing. An ingest batch (one
timestamp, dense offsets) carries only the lengths column: 4 bytes of framing a record, against
16 in version 1. Columns are little-endian so that ``array`` reads them without a byte swap on
every common machine; a big-endian host swaps.

The CRC covers everything but itself (unlike Kafka, base offset and epoch are covered too: no
one rewrites them in place). A batch whose CRC holds but whose columns do not exactly fill it
is rejected by ``records_problem`` (replicated batches and the recovery scan check it), so the
decoders can trust the lengths.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Sequence

from crc32c import crc32c

from lb.storage.records import Record

FORMAT_VERSION = 2
HEADER = struct.Struct(">qiiBIhiqqi")
HEADER_SIZE = HEADER.size  # 47
LENGTH_PREFIX = 12  # base_offset + batch_length
CRC_POS = 17
CRC_END = 21
ATTR_COMPRESSION_MASK = 0x0007
ATTR_OFFSET_COLUMN = 0x0100
ATTR_TIMESTAMP_COLUMN = 0x0200
_ATTR_KNOWN = ATTR_COMPRESSION_MASK | ATTR_OFFSET_COLUMN | ATTR_TIMESTAMP_COLUMN
LENGTH_SIZE = 4  # framing bytes a record in an ingest batch (its lengths-column entry)
_HEAD = struct.Struct(">qiiB")
_CRC = struct.Struct(">I")
_TAIL = struct.Struct(">hiqqi")
_BASE_LEN = struct.Struct(">qi")
_SWAP = sys.byteorder != "little"

if array("I").itemsize != 4 or array("q").itemsize != 8:  # pragma: no cover - exotic ABIs
    raise ImportError("lb.storage needs 4-byte array('I') and 8-byte array('q')")


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

    @property
    def columns_size(self) -> int:
        """Bytes of the record columns (lengths, and offsets/timestamps when present)."""
        per = LENGTH_SIZE
        if self.attributes & ATTR_OFFSET_COLUMN:
            per += 4
        if self.attributes & ATTR_TIMESTAMP_COLUMN:
            per += 8
        return per * self.record_count


def _column(typecode: str, values: Iterable[int]) -> bytes:
    col = array(typecode, values)
    if _SWAP:  # pragma: no cover - big-endian hosts
        col.byteswap()
    return col.tobytes()


def _read_column(typecode: str, buf: bytes | memoryview, pos: int, n: int) -> array[int]:
    col = array(typecode)
    col.frombytes(buf[pos : pos + n * col.itemsize])
    if _SWAP:  # pragma: no cover - big-endian hosts
        col.byteswap()
    return col


def encode_batch(base_offset: int, leader_epoch: int, bodies: Sequence[bytes],
                 timestamps_ns: Sequence[int] | int) -> tuple[bytes, bytes, bytes]:
    """Encode consecutive records as one batch; returns its pieces (header, columns, bodies)
    for ``os.writev``, so the bodies are copied once, by the join.

    ``timestamps_ns`` is one int (all records share it, the common case at ingest) or one per
    body. Only when they differ does the batch carry a timestamp column.
    """
    n = len(bodies)
    assert n > 0
    columns = _column("I", map(len, bodies))
    attrs = 0
    if isinstance(timestamps_ns, int):
        first_ts = max_ts = timestamps_ns
    else:
        first_ts = timestamps_ns[0]
        max_ts = max(timestamps_ns)
        if max_ts != first_ts or min(timestamps_ns) != first_ts:
            attrs = ATTR_TIMESTAMP_COLUMN
            columns += _column("q", [t - first_ts for t in timestamps_ns])
    joined = b"".join(bodies)
    head = _seal(base_offset, leader_epoch, attrs, n - 1, first_ts, max_ts, n, columns, joined)
    return head, columns, joined


def encode_sparse_batch(base_offset: int, leader_epoch: int, last_offset_delta: int,
                        first_ts: int, records: Sequence[tuple[int, int, bytes]]) -> bytes:
    """A batch whose records keep given offset deltas (compaction, truncation splits).

    ``records`` are (offset_delta, timestamp_ns, body); may be empty (an empty batch keeps the
    offset range contiguous so followers and readers see no hole in the batch chain).
    """
    n = len(records)
    bodies = [r[2] for r in records]
    deltas = [r[0] for r in records]
    ts_deltas = [r[1] - first_ts for r in records]
    columns = _column("I", map(len, bodies))
    attrs = 0
    if deltas != list(range(n)):
        attrs |= ATTR_OFFSET_COLUMN
        columns += _column("I", deltas)
    if any(ts_deltas):
        attrs |= ATTR_TIMESTAMP_COLUMN
        columns += _column("q", ts_deltas)
    max_ts = max([first_ts, *(r[1] for r in records)])
    joined = b"".join(bodies)
    head = _seal(base_offset, leader_epoch, attrs, last_offset_delta, first_ts, max_ts, n,
                 columns, joined)
    return b"".join((head, columns, joined))


def _seal(base_offset: int, leader_epoch: int, attrs: int, last_offset_delta: int,
          first_ts: int, max_ts: int, count: int, columns: bytes, bodies: bytes) -> bytes:
    """The header, CRC included, of a batch whose records are ``columns + bodies``."""
    head = _HEAD.pack(base_offset, HEADER_SIZE - LENGTH_PREFIX + len(columns) + len(bodies),
                      leader_epoch, FORMAT_VERSION)
    tail = _TAIL.pack(attrs, last_offset_delta, first_ts, max_ts, count)
    crc = crc32c(bodies, crc32c(columns, crc32c(tail, crc32c(head))))
    return b"".join((head, _CRC.pack(crc), tail))


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
    if h.attributes & ~_ATTR_KNOWN:
        return f"unknown attributes {h.attributes:#x}"
    if h.attributes & ATTR_COMPRESSION_MASK:
        return f"unsupported compression {h.attributes & ATTR_COMPRESSION_MASK}"
    if h.record_count < 0 or h.last_offset_delta < 0 or h.record_count > h.last_offset_delta + 1:
        return "bad record count or offset delta"
    if h.columns_size > h.batch_length - (HEADER_SIZE - LENGTH_PREFIX):
        return "record count exceeds batch length"
    if h.base_offset < 0:
        return "negative base offset"
    return None


def crc_ok(buf: bytes | memoryview, pos: int, size: int, crc: int) -> bool:
    """Whether the batch at ``buf[pos:pos+size]`` matches its CRC."""
    mv = memoryview(buf)
    return crc32c(mv[pos + CRC_END : pos + size], crc32c(mv[pos : pos + CRC_POS])) == crc


def records_problem(buf: bytes | memoryview, pos: int, h: BatchHeader) -> str | None:
    """A reason the record columns of the batch at ``pos`` are inconsistent, or None.

    Assumes ``header_problem(h)`` is None and the whole batch is in ``buf``. A batch with a
    good CRC can still fail here only if a faulty writer made it; readers rely on this check
    having passed (on receipt from a leader, and in the recovery scan).
    """
    n = h.record_count
    p = pos + HEADER_SIZE
    lengths = _read_column("I", buf, p, n)
    if sum(lengths) != h.size - HEADER_SIZE - h.columns_size:
        return "record lengths do not fill the batch"
    if h.attributes & ATTR_OFFSET_COLUMN:
        deltas = _read_column("I", buf, p + LENGTH_SIZE * n, n)
        prev = -1
        for d in deltas:
            if d <= prev:
                return "offset deltas not increasing"
            prev = d
        if prev > h.last_offset_delta:
            return "offset delta beyond the batch"
    return None


def _columns(buf: bytes | memoryview, pos: int, h: BatchHeader
             ) -> tuple[array[int], array[int] | None, array[int] | None, int]:
    """(lengths, offset deltas or None, timestamp deltas or None, position of the bodies)."""
    n = h.record_count
    p = pos + HEADER_SIZE
    lengths = _read_column("I", buf, p, n)
    p += LENGTH_SIZE * n
    deltas = ts = None
    if h.attributes & ATTR_OFFSET_COLUMN:
        deltas = _read_column("I", buf, p, n)
        p += 4 * n
    if h.attributes & ATTR_TIMESTAMP_COLUMN:
        ts = _read_column("q", buf, p, n)
        p += 8 * n
    return lengths, deltas, ts, p


def decode_into(buf: bytes, pos: int, h: BatchHeader, min_offset: int, max_offset: int,
                out: list[Record]) -> None:
    """Append the records of the batch at ``pos`` with min_offset <= offset <= max_offset."""
    lengths, deltas, ts, p = _columns(buf, pos, h)
    base = h.base_offset
    ts0 = h.first_timestamp
    epoch = h.leader_epoch
    add = out.append
    if deltas is None and ts is None and min_offset <= base and h.last_offset <= max_offset:
        off = base
        for ln in lengths:  # the common case: a whole ingest batch
            e = p + ln
            add(Record(off, ts0, epoch, buf[p:e]))
            off += 1
            p = e
        return
    for i, ln in enumerate(lengths):
        off = base + (i if deltas is None else deltas[i])
        if off > max_offset:
            return
        e = p + ln
        if off >= min_offset:
            add(Record(off, ts0 if ts is None else ts0 + ts[i], epoch, buf[p:e]))
        p = e


def iter_record_fields(buf: bytes, pos: int, h: BatchHeader) -> list[tuple[int, int, bytes]]:
    """(offset_delta, timestamp_ns, body) of every record of the batch at ``pos``."""
    lengths, deltas, ts, p = _columns(buf, pos, h)
    ts0 = h.first_timestamp
    out = []
    for i, ln in enumerate(lengths):
        e = p + ln
        out.append((i if deltas is None else deltas[i], ts0 if ts is None else ts0 + ts[i],
                    buf[p:e]))
        p = e
    return out
