"""Key compaction: keep the latest message per key at or below the HW.

Messages without a key are always kept; offsets are preserved (a batch keeps its base offset
and offset range, even when all its records go, so the batch chain has no holes); nothing above
the HW is removed, and the decision "is this the latest for its key" only looks at offsets <=
HW, because an uncommitted later message may still be truncated away.

Each segment is rewritten to ``<base>.log.cleaned`` (+ indexes), fsynced, then renamed over
the original; open() deletes leftover ``.cleaned`` files, so a crash mid-way rolls back.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lb.storage import batch as fmt
from lb.storage import checkpoint
from lb.storage.index import SparseIndex
from lb.storage.records import key_of
from lb.storage.segment import CLEANED_SUFFIX, SCAN_CHUNK_BYTES, Segment, scan_file

if TYPE_CHECKING:
    from lb.storage.commitlog import CommitLog

KEY_MAP_READ_BYTES = 1 << 20


def build_key_map(log: CommitLog, hw: int) -> dict[bytes, int]:
    """key -> latest offset <= hw, over the whole log."""
    latest: dict[bytes, int] = {}
    offset = max(log.oldest_offset, 0)
    while offset <= hw:
        recs = log.read_records(offset, KEY_MAP_READ_BYTES, max_offset=hw)
        if not recs:
            break
        for r in recs:
            k = key_of(r.body)
            if k:
                latest[k] = r.offset
        offset = recs[-1].offset + 1
    return latest


def compact_segment(seg: Segment, latest: dict[bytes, int], hw: int) -> int:
    """Rewrite ``seg`` without superseded keyed records; return how many were removed."""
    tmp_log = seg.log_path + CLEANED_SUFFIX
    removed = 0
    size = seg.size
    pos = 0
    buf = b""
    bstart = 0
    with open(tmp_log, "wb") as out:
        while pos < size:
            if pos + fmt.HEADER_SIZE > bstart + len(buf):
                buf = os.pread(seg.rfd, min(SCAN_CHUNK_BYTES, size - pos), pos)
                bstart = pos
            h = fmt.parse_header(buf, pos - bstart)
            if pos + h.size > bstart + len(buf):
                buf = os.pread(seg.rfd, max(SCAN_CHUNK_BYTES, h.size), pos)
                bstart = pos
            p = pos - bstart
            if not fmt.crc_ok(buf, p, h.size, h.crc):
                raise seg.corrupt(h.base_offset, pos, "CRC mismatch during compaction")
            raw = buf[p : p + h.size]
            if h.base_offset > hw or h.record_count == 0:
                out.write(raw)
            else:
                recs = fmt.iter_record_fields(buf, p, h)
                base = h.base_offset
                kept = []
                for od, ts, body in recs:
                    off = base + od
                    k = key_of(body) if off <= hw else b""
                    if not k or latest.get(k) == off:
                        kept.append((od, ts, body))
                if len(kept) == len(recs):
                    out.write(raw)
                else:
                    removed += len(recs) - len(kept)
                    out.write(fmt.encode_sparse_batch(base, h.leader_epoch, h.last_offset_delta,
                                                      h.first_timestamp, kept))
            pos += h.size
        if removed:
            out.flush()
            os.fsync(out.fileno())
    if not removed:
        os.unlink(tmp_log)
        return 0
    index = SparseIndex(seg.base_offset, seg.interval_bytes)
    fd = os.open(tmp_log, os.O_RDONLY)
    try:
        res = scan_file(fd, seg.base_offset, os.fstat(fd).st_size, index, verify_crc=True)
    finally:
        os.close(fd)
    assert res.problem is None and res.next_offset == seg.next_offset, res
    index.write_all(seg.index_path + CLEANED_SUFFIX, seg.time_path + CLEANED_SUFFIX)
    os.replace(tmp_log, seg.log_path)  # the commit point
    os.replace(seg.index_path + CLEANED_SUFFIX, seg.index_path)
    os.replace(seg.time_path + CLEANED_SUFFIX, seg.time_path)
    checkpoint.fsync_dir(seg.directory)
    os.close(seg.rfd)
    seg.rfd = os.open(seg.log_path, os.O_RDONLY)
    seg.scan(verify_crc=False)
    seg.index.mark_flushed()
    seg.dirty = False
    return removed
