"""One segment: ``<base>.log`` plus its indexes. Scanning (recovery), appending, reading.

Reads use ``os.pread`` on a read-only descriptor, writes go through a separate ``O_APPEND``
descriptor, so reads never move a shared file position and ``fsync`` (which Linux allows on
the read-only descriptor) can run in a worker thread while the main thread reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from lb.storage import batch as fmt
from lb.storage.errors import CorruptLogError
from lb.storage.index import SparseIndex

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SCAN_CHUNK_BYTES = 4 << 20


def segment_name(base_offset: int, suffix: str) -> str:
    """Liftbridge layout: 20-digit zero-padded base offset."""
    return f"{base_offset:020d}{suffix}"


@dataclass(slots=True)
class ScanProblem:
    """The first batch that failed validation during a scan."""

    position: int
    offset: int  # the offset the batch was expected to start at
    reason: str
    torn: bool  # True when the batch runs past the end of the file (an unfinished write)
    header_ok: bool  # whether the header itself parsed (so the batch end is trustworthy)
    declared_end: int  # end position the header claims, or -1
    last_offset: int  # last offset claimed by the bad header, or -1


@dataclass(slots=True)
class ScanResult:
    """What a scan of a segment file learned."""

    valid_bytes: int
    next_offset: int
    record_count: int
    batch_count: int
    max_timestamp: int | None
    first_timestamp: int | None
    epoch_starts: list[tuple[int, int]] = field(default_factory=list)
    problem: ScanProblem | None = None


def scan_file(fd: int, base_offset: int, size: int, index: SparseIndex, verify_crc: bool,
              start: int = 0, expected: int | None = None) -> ScanResult:
    """Walk every batch from ``start``; feed the index; stop at the first invalid batch."""
    pos = start
    expected = base_offset if expected is None else expected
    buf = b""
    bstart = 0
    count = 0
    batches = 0
    max_ts: int | None = None
    first_ts: int | None = None
    epoch_starts: list[tuple[int, int]] = []
    last_epoch: int | None = None
    problem: ScanProblem | None = None
    while pos < size:
        if pos + fmt.HEADER_SIZE > size:
            problem = ScanProblem(pos, expected, "partial batch header at end of file", True,
                                  False, -1, -1)
            break
        if pos + fmt.HEADER_SIZE > bstart + len(buf):
            buf = os.pread(fd, min(SCAN_CHUNK_BYTES, size - pos), pos)
            bstart = pos
        h = fmt.parse_header(buf, pos - bstart)
        reason = fmt.header_problem(h)
        if reason is not None:
            problem = ScanProblem(pos, expected, reason, False, False, -1, -1)
            break
        end = pos + h.size
        if end > size:
            problem = ScanProblem(pos, expected, "batch runs past end of file", True, True,
                                  end, h.last_offset)
            break
        if end > bstart + len(buf):
            buf = os.pread(fd, max(SCAN_CHUNK_BYTES, h.size), pos)
            bstart = pos
        if verify_crc:
            reason = ("CRC mismatch" if not fmt.crc_ok(buf, pos - bstart, h.size, h.crc)
                      else fmt.records_problem(buf, pos - bstart, h))
            if reason is not None:
                problem = ScanProblem(pos, expected, reason, False, True, end, h.last_offset)
                break
        if h.base_offset != expected:
            problem = ScanProblem(pos, expected,
                                  f"batch starts at offset {h.base_offset}, expected {expected}",
                                  False, True, end, h.last_offset)
            break
        if h.leader_epoch != last_epoch:
            if last_epoch is None or h.leader_epoch > last_epoch:
                epoch_starts.append((h.leader_epoch, h.base_offset))
            last_epoch = h.leader_epoch
        index.on_batch(h.base_offset, pos, h.max_timestamp)
        if h.record_count:
            if max_ts is None or h.max_timestamp > max_ts:
                max_ts = h.max_timestamp
            if first_ts is None:
                first_ts = h.first_timestamp
        count += h.record_count
        batches += 1
        expected = h.next_offset
        pos = end
    return ScanResult(pos, expected, count, batches, max_ts, first_ts, epoch_starts, problem)


def batch_ok_at(fd: int, pos: int, size: int) -> bool:
    """Whether a complete batch with a valid header and CRC starts at ``pos``."""
    if pos + fmt.HEADER_SIZE > size:
        return False
    head = os.pread(fd, fmt.HEADER_SIZE, pos)
    h = fmt.parse_header(head)
    if fmt.header_problem(h) is not None or pos + h.size > size:
        return False
    data = os.pread(fd, h.size, pos)
    return fmt.crc_ok(data, 0, h.size, h.crc) and fmt.records_problem(data, 0, h) is None


class Segment:
    """A segment's files and in-memory summary."""

    def __init__(self, directory: str, base_offset: int, interval_bytes: int,
                 create: bool = False) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.interval_bytes = interval_bytes
        self.log_path = os.path.join(directory, segment_name(base_offset, LOG_SUFFIX))
        self.index_path = os.path.join(directory, segment_name(base_offset, INDEX_SUFFIX))
        self.time_path = os.path.join(directory, segment_name(base_offset, TIME_SUFFIX))
        self.rfd = os.open(self.log_path, os.O_RDONLY | os.O_CREAT, 0o644)
        self.wfd: int | None = None
        self.size = 0
        self.next_offset = base_offset
        self.record_count = 0
        self.max_timestamp: int | None = None
        self.first_timestamp: int | None = None
        self.first_append_ns: int | None = None  # for age-based roll
        self.index = SparseIndex(base_offset, interval_bytes)
        self.dirty = False  # bytes written since the last fsync
        if create:
            for p in (self.index_path, self.time_path):
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))

    # -- state from disk ----------------------------------------------------------------

    def scan(self, verify_crc: bool) -> ScanResult:
        """Rebuild the in-memory summary and index from the file."""
        self.index = SparseIndex(self.base_offset, self.interval_bytes)
        size = os.fstat(self.rfd).st_size
        res = scan_file(self.rfd, self.base_offset, size, self.index, verify_crc)
        self._adopt(res)
        return res

    def _adopt(self, res: ScanResult) -> None:
        self.size = res.valid_bytes
        self.next_offset = res.next_offset
        self.record_count = res.record_count
        self.max_timestamp = res.max_timestamp
        self.first_timestamp = res.first_timestamp
        self.first_append_ns = res.first_timestamp

    def corrupt(self, offset: int, position: int, reason: str) -> CorruptLogError:
        return CorruptLogError(self.log_path, offset, position, reason)

    # -- writing --------------------------------------------------------------------------

    def open_for_append(self) -> None:
        if self.wfd is None:
            self.wfd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def close_writer(self) -> None:
        if self.wfd is not None:
            os.close(self.wfd)
            self.wfd = None

    def truncate_file(self, position: int) -> None:
        """Cut the log file at ``position`` (a batch boundary) and rescan it."""
        os.truncate(self.log_path, position)
        self.scan(verify_crc=False)
        self.index.write_all(self.index_path, self.time_path)
        self.dirty = True

    def flush_index(self) -> None:
        self.index.flush(self.index_path, self.time_path)

    def fsync(self) -> None:
        os.fsync(self.rfd)
        self.dirty = False

    def close(self) -> None:
        self.close_writer()
        os.close(self.rfd)
        self.rfd = -1

    # -- reading --------------------------------------------------------------------------

    def read_chunk(self, offset: int, max_bytes: int) -> tuple[bytes, int, int, int]:
        """(buf, start, end, buf_pos): whole batches in buf[start:end], the first holding
        ``offset`` or being the first after it, at most ``max_bytes`` unless the first batch
        alone is larger. ``buf_pos`` is the file position of buf[0]. Empty (start == end) when
        the segment holds nothing at or after ``offset``."""
        size = self.size
        pos = self.index.lookup(offset)
        if pos >= size:
            return b"", 0, 0, 0
        rfd = self.rfd
        want = max_bytes + 2 * self.interval_bytes
        buf = os.pread(rfd, min(want, size - pos), pos)
        bstart = pos
        # skip batches that end before ``offset``
        while True:
            if pos >= size:
                return b"", 0, 0, 0
            if pos + fmt.HEADER_SIZE > bstart + len(buf):
                buf = os.pread(rfd, min(want, size - pos), pos)
                bstart = pos
            h = fmt.parse_header(buf, pos - bstart)
            if h.size < fmt.HEADER_SIZE or pos + h.size > size:
                raise self.corrupt(h.base_offset, pos, "bad batch length while reading")
            if h.next_offset > offset:
                break
            pos += h.size
        first = pos
        end = pos + h.size
        if end > bstart + len(buf):
            buf = os.pread(rfd, max(h.size, min(max_bytes, size - pos)), pos)
            bstart = pos
        limit = first + max_bytes
        avail = bstart + len(buf)
        pos = end
        while pos + fmt.LENGTH_PREFIX <= avail:
            _, bsize = fmt.peek_length(buf, pos - bstart)
            nxt = pos + bsize
            if nxt > avail or nxt > limit or nxt > size:
                break
            pos = nxt
        return buf, first - bstart, pos - bstart, bstart
