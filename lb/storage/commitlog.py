"""CommitLog: one partition's log directory. See the package docstring for the contract."""

from __future__ import annotations

import bisect
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from lb.storage import batch as fmt
from lb.storage import checkpoint
from lb.storage.compaction import build_key_map, compact_segment
from lb.storage.epochs import LeaderEpochCache
from lb.storage.errors import (
    EpochRegressionError,
    InvalidBatchError,
    LogClosedError,
    OffsetMismatchError,
)
from lb.storage.options import LogOptions
from lb.storage.records import MessageIn, Record, encode_body
from lb.storage.retention import RetentionLimits, SegmentInfo, plan_retention
from lb.storage.segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_SUFFIX,
    ScanProblem,
    Segment,
    batch_ok_at,
    segment_name,
)

log = logging.getLogger("lb.storage")

_SEGMENT_FILE = re.compile(r"^(\d{20})(\.log|\.index|\.timeindex)$")
_IOV_MAX = 1000
_INDEX_FLUSH_BYTES = 64 << 10


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Offsets given to an append, and whether the fsync policy now wants a ``sync()``."""

    first_offset: int
    last_offset: int
    sync_due: bool


@dataclass(slots=True)
class RecoveryReport:
    """What ``CommitLog.open`` had to repair. ``clean`` is True when nothing was."""

    segments: int = 0
    truncated_bytes: int = 0
    truncated_segment: str | None = None
    truncated_reason: str | None = None
    dropped_first_offset: int | None = None
    dropped_last_offset: int | None = None  # best effort: None if the header was unreadable
    rebuilt_indexes: list[str] = field(default_factory=list)  # missing or corrupt
    completed_indexes: list[str] = field(default_factory=list)  # stale after a crash
    removed_files: list[str] = field(default_factory=list)  # leftovers of unfinished work
    dropped_segments: list[str] = field(default_factory=list)  # after a torn sealed segment
    epochs_rebuilt: bool = False
    hw: int = -1

    @property
    def clean(self) -> bool:
        return not (self.truncated_bytes or self.rebuilt_indexes or self.removed_files
                    or self.epochs_rebuilt or self.dropped_segments)


@dataclass(slots=True)
class CleanReport:
    """What one ``clean`` run did."""

    deleted_segments: list[int] = field(default_factory=list)
    deleted_reasons: list[str] = field(default_factory=list)
    compacted_segments: list[int] = field(default_factory=list)
    removed_records: int = 0
    oldest_offset: int = -1


@dataclass(frozen=True, slots=True)
class LogStatistics:
    segments: int
    size_bytes: int
    oldest_offset: int
    newest_offset: int
    hw: int
    durable_offset: int
    unsynced_messages: int


class CommitLog:
    """A partition's append-only log of record batches.

    Synchronous and single-writer: appends, truncation, clean and sync must not overlap each
    other; reads may run while ``sync()`` runs in a worker thread. Open with ``CommitLog.open``.
    """

    def __init__(self, path: str, options: LogOptions) -> None:
        self.path = path
        self.options = options
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._leo = 0
        self._hw = -1
        self._durable = -1
        self._unsynced_msgs = 0
        self._unsynced_since_ns: int | None = None
        self._roll_sync_pending = False
        self._dir_dirty = False
        self._closed = False
        self.epochs = LeaderEpochCache(path, lambda: self._leo)
        self.recovery_report = RecoveryReport()

    # ------------------------------------------------------------------ open / recovery

    @classmethod
    def open(cls, path: str | os.PathLike[str], options: LogOptions | None = None) -> CommitLog:
        """Open or create the log at ``path``, recovering from any crash (see the report)."""
        self = cls(os.fspath(path), options or LogOptions())
        os.makedirs(self.path, exist_ok=True)
        self._recover()
        return self

    def _recover(self) -> None:
        rep = self.recovery_report
        d = self.path
        bases: set[int] = set()
        names = sorted(os.listdir(d))
        for name in names:
            if name.endswith((CLEANED_SUFFIX, DELETED_SUFFIX, checkpoint.TMP_SUFFIX)):
                # unfinished compaction swap (roll back), deletion (finish) or checkpoint
                os.unlink(os.path.join(d, name))
                rep.removed_files.append(name)
                continue
            m = _SEGMENT_FILE.match(name)
            if m and m.group(2) == LOG_SUFFIX:
                bases.add(int(m.group(1)))
        for name in names:
            m = _SEGMENT_FILE.match(name)
            if m and m.group(2) != LOG_SUFFIX and int(m.group(1)) not in bases:
                os.unlink(os.path.join(d, name))
                rep.removed_files.append(name)
        if rep.removed_files:
            log.warning("%s: removed leftovers of interrupted work: %s", d, rep.removed_files)
        ordered = sorted(bases)
        if not ordered:
            self._add_segment(Segment(d, 0, self.options.index_interval_bytes, create=True))
            checkpoint.fsync_dir(d)
        scanned_epochs: list[tuple[int, int]] = []
        for i, base in enumerate(ordered):
            seg = Segment(d, base, self.options.index_interval_bytes)
            last = i == len(ordered) - 1
            if self._segments and base != self._segments[-1].next_offset:
                prev = self._segments[-1]
                seg.close()
                raise prev.corrupt(prev.next_offset, prev.size,
                                   f"next segment starts at {base}, expected {prev.next_offset}")
            res = seg.scan(verify_crc=last or self.options.verify_on_open)
            if res.problem is not None and not last and res.problem.torn:
                # A sealed segment that ends in half a batch: a power loss took its tail
                # before the roll's fsync. Everything after it is beyond the durable prefix.
                self._drop_segments_after(seg, ordered[i + 1 :])
                last = True  # and the loop ends with this segment
            if res.problem is not None:
                self._handle_scan_problem(seg, res.problem, last)
            for e, o in res.epoch_starts:
                if not scanned_epochs or e > scanned_epochs[-1][0]:
                    scanned_epochs.append((e, o))
            status = seg.index.compare_files(seg.index_path, seg.time_path)
            if status == "ok":
                seg.index.mark_flushed()
            else:
                seg.index.write_all(seg.index_path, seg.time_path)
                if status == "stale":
                    rep.completed_indexes.append(seg.log_path)
                else:
                    rep.rebuilt_indexes.append(seg.log_path)
                    log.warning("%s: index %s, rebuilt from the log", seg.log_path, status)
            self._add_segment(seg)
            if last:
                break
        self._leo = self._segments[-1].next_offset
        active = self._segments[-1]
        active.open_for_append()
        active.fsync()
        rep.segments = len(self._segments)
        self._recover_epochs(scanned_epochs)
        hw = checkpoint.read_hw(d)
        self._hw = -1 if hw is None else max(-1, min(hw, self._leo - 1))
        rep.hw = self._hw
        self._durable = self._leo - 1

    def _drop_segments_after(self, torn: Segment, later_bases: list[int]) -> None:
        """Remove the segments after a torn sealed segment, newest first, so that a crash
        halfway leaves the same situation for the next open (Kafka recovers the same way).
        Their offsets are not reachable without the torn tail: the log is only its prefix."""
        if not later_bases:
            return
        names = []
        for base in reversed(later_bases):
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_SUFFIX):  # the log first: orphaned
                name = segment_name(base, suffix)  # index files are removed on the next open
                path = os.path.join(self.path, name)
                if os.path.exists(path):
                    os.unlink(path)
                    names.append(name)
        checkpoint.fsync_dir(self.path)
        self.recovery_report.dropped_segments.extend(sorted(names))
        log.warning("%s: sealed segment %s has a torn tail; removed the %d later segments "
                    "(%s)", self.path, torn.log_path, len(later_bases), sorted(names))

    def _handle_scan_problem(self, seg: Segment, p: ScanProblem, last: bool) -> None:
        file_size = os.fstat(seg.rfd).st_size
        if not last:
            seg.close()
            raise seg.corrupt(p.offset, p.position, p.reason)
        if (not p.torn and p.header_ok and p.declared_end < file_size
                and batch_ok_at(seg.rfd, p.declared_end, file_size)):
            # a bad batch followed by good ones: not a torn write, real corruption
            seg.close()
            raise seg.corrupt(p.offset, p.position, p.reason)
        rep = self.recovery_report
        rep.truncated_bytes = file_size - p.position
        rep.truncated_segment = seg.log_path
        rep.truncated_reason = p.reason
        rep.dropped_first_offset = p.offset
        rep.dropped_last_offset = p.last_offset if p.header_ok else None
        log.warning("%s: cut %d bytes of torn tail at byte %d (%s); dropped offsets %d..%s",
                    seg.log_path, rep.truncated_bytes, p.position, p.reason, p.offset,
                    rep.dropped_last_offset if rep.dropped_last_offset is not None else "?")
        os.truncate(seg.log_path, p.position)

    def _recover_epochs(self, scanned: list[tuple[int, int]]) -> None:
        entries = checkpoint.read_epochs(self.path)
        exists = os.path.exists(os.path.join(self.path, checkpoint.EPOCH_FILE))
        rebuilt = entries is None and (exists or bool(scanned))
        entries = list(entries or [])
        entries = [(e, o) for e, o in entries if o < self._leo]
        for e, o in scanned:
            if not entries or e > entries[-1][0]:
                entries.append((e, o))
        cache = LeaderEpochCache(self.path, lambda: self._leo, entries)
        if self._leo > self._segments[0].base_offset:
            cache.truncate_from_start(self._segments[0].base_offset)
        if rebuilt or cache.entries != (checkpoint.read_epochs(self.path) or []):
            cache._persist()
        if rebuilt:
            self.recovery_report.epochs_rebuilt = True
            log.warning("%s: leader-epoch checkpoint missing or corrupt, rebuilt from batches",
                        self.path)
        self.epochs = cache

    def _add_segment(self, seg: Segment) -> None:
        self._segments.append(seg)
        self._bases.append(seg.base_offset)

    # ------------------------------------------------------------------ properties

    @property
    def next_offset(self) -> int:
        """The log end offset (LEO): the offset the next appended message gets."""
        return self._leo

    @property
    def newest_offset(self) -> int:
        """LEO - 1; -1 for a log that never held a message."""
        return self._leo - 1

    @property
    def oldest_offset(self) -> int:
        """The first retained offset, or -1 when the log holds no offsets."""
        first = self._segments[0].base_offset
        return first if self._leo > first else -1

    @property
    def hw(self) -> int:
        return self._hw

    @property
    def durable_offset(self) -> int:
        """The newest offset known to be fsynced."""
        return self._durable

    @property
    def unsynced_messages(self) -> int:
        return self._unsynced_msgs

    def set_hw(self, hw: int) -> None:
        """Set the high watermark in memory (``checkpoint_hw`` makes it durable)."""
        assert -1 <= hw <= self._leo - 1, (hw, self._leo)
        self._hw = hw

    def checkpoint_hw(self) -> None:
        """Write the HW checkpoint atomically (temp + fsync + rename + dir fsync)."""
        self._check_open()
        checkpoint.write_hw(self.path, self._hw)

    def segment_infos(self) -> list[SegmentInfo]:
        return [SegmentInfo(s.base_offset, s.next_offset, s.size, s.record_count,
                            s.max_timestamp) for s in self._segments]

    def statistics(self) -> LogStatistics:
        return LogStatistics(len(self._segments), sum(s.size for s in self._segments),
                             self.oldest_offset, self.newest_offset, self._hw, self._durable,
                             self._unsynced_msgs)

    # ------------------------------------------------------------------ append

    def append(self, messages: Sequence[MessageIn], now_ns: int,
               leader_epoch: int | None = None) -> AppendResult:
        """Append messages as one write; offsets from the LEO, timestamps ``now_ns`` unless a
        message carries its own."""
        bodies = [encode_body(m) for m in messages]
        if any(m.timestamp_ns for m in messages):
            stamps: list[int] | int = [m.timestamp_ns or now_ns for m in messages]
        else:
            stamps = now_ns
        return self.append_bodies(bodies, stamps, now_ns, leader_epoch)

    def append_bodies(self, bodies: Sequence[bytes], timestamps_ns: Sequence[int] | int | None,
                      now_ns: int, leader_epoch: int | None = None) -> AppendResult:
        """Append pre-encoded bodies (see ``records.encode_body``) with one write call.

        ``timestamps_ns``: one per body, one for all, or None for ``now_ns``. Large appends
        are split into several batches (``batch_bytes_max``/``batch_messages_max``), still
        written with one ``writev``.
        """
        if self._closed:
            raise LogClosedError(self.path)
        n = len(bodies)
        opts = self.options
        if n == 0 or n > opts.append_messages_max:
            raise ValueError(f"append of {n} messages (1..{opts.append_messages_max} allowed)")
        if timestamps_ns is None:
            timestamps_ns = now_ns
        elif not isinstance(timestamps_ns, int) and len(timestamps_ns) != n:
            raise ValueError("one timestamp per body expected")
        epoch = self._epoch_for(leader_epoch)
        first = self._leo
        pieces: list[bytes] = []
        metas: list[tuple[int, int, int, int]] = []  # (base, max timestamp, size, count)
        if n <= opts.batch_messages_max:
            # Usually one batch: encode it and check its size after (cheaper than summing
            # the body lengths first); split it up in the rare case it is too big.
            h, c, r = fmt.encode_batch(first, epoch, bodies, timestamps_ns)
            total = len(h) + len(c) + len(r)
            if total - fmt.HEADER_SIZE <= opts.batch_bytes_max:
                pieces = [h, c, r]
                mt = timestamps_ns if isinstance(timestamps_ns, int) else max(timestamps_ns)
                metas = [(first, mt, total, n)]
        if not pieces:
            i = 0
            while i < n:
                j = i
                size = 0
                while j < n and j - i < opts.batch_messages_max:
                    size += len(bodies[j]) + fmt.LENGTH_SIZE
                    if size > opts.batch_bytes_max and j > i:
                        break
                    j += 1
                ts = timestamps_ns if isinstance(timestamps_ns, int) else timestamps_ns[i:j]
                h, c, r = fmt.encode_batch(first + i, epoch, bodies[i:j], ts)
                pieces += (h, c, r)
                mt = ts if isinstance(ts, int) else max(ts)
                metas.append((first + i, mt, len(h) + len(c) + len(r), j - i))
                i = j
            total = sum(m[2] for m in metas)
        seg = self._maybe_roll(total, now_ns)
        if epoch > self.epochs.latest_epoch:
            self.epochs.assign(epoch, first)
        pos = seg.size
        self._write(seg, pieces, total)
        first_ts = timestamps_ns if isinstance(timestamps_ns, int) else timestamps_ns[0]
        return self._note_appended(seg, pos, metas, first, first + n, n, first_ts, now_ns)

    def append_raw(self, data: bytes, now_ns: int,
                   leader_epoch: int | None = None) -> AppendResult:
        """Append whole batches copied from a leader, without decoding their records.

        Validated first: complete batches, known format version, CRC, the first batch starts
        at the LEO and each next one where the previous ended, epochs never go backwards (and
        not above ``leader_epoch`` when given). Nothing is written if any check fails.
        """
        self._check_open()
        if not data:
            raise ValueError("empty raw append")
        size = len(data)
        expected = first = self._leo
        latest = self.epochs.latest_epoch
        new_epochs: list[tuple[int, int]] = []
        metas: list[tuple[int, int, int, int]] = []
        count = 0
        first_ts: int | None = None
        pos = 0
        while pos < size:
            if size - pos < fmt.HEADER_SIZE:
                raise InvalidBatchError(f"truncated batch header at byte {pos}")
            h = fmt.parse_header(data, pos)
            reason = fmt.header_problem(h)
            if reason is not None:
                raise InvalidBatchError(f"batch at byte {pos}: {reason}")
            if pos + h.size > size:
                raise InvalidBatchError(f"truncated batch at byte {pos}")
            if not fmt.crc_ok(data, pos, h.size, h.crc):
                raise InvalidBatchError(f"CRC mismatch in batch at offset {h.base_offset}")
            reason = fmt.records_problem(data, pos, h)
            if reason is not None:
                raise InvalidBatchError(f"batch at offset {h.base_offset}: {reason}")
            if h.base_offset != expected:
                raise OffsetMismatchError(expected, h.base_offset)
            if h.leader_epoch < latest:
                raise EpochRegressionError(latest, h.leader_epoch)
            if leader_epoch is not None and h.leader_epoch > leader_epoch:
                raise InvalidBatchError(
                    f"batch epoch {h.leader_epoch} above leader epoch {leader_epoch}")
            if h.leader_epoch > latest:
                new_epochs.append((h.leader_epoch, h.base_offset))
                latest = h.leader_epoch
            if first_ts is None and h.record_count:
                first_ts = h.first_timestamp
            metas.append((h.base_offset, h.max_timestamp, h.size, h.record_count))
            count += h.record_count
            expected = h.next_offset
            pos += h.size
        seg = self._maybe_roll(size, now_ns)
        for e, o in new_epochs:
            self.epochs.assign(e, o)
        wpos = seg.size
        self._write(seg, [data], size)
        return self._note_appended(seg, wpos, metas, first, expected, count,
                                   first_ts, now_ns)

    def _note_appended(self, seg: Segment, pos: int, metas: list[tuple[int, int, int, int]],
                       first: int, next_offset: int, count: int, first_ts: int | None,
                       now_ns: int) -> AppendResult:
        index = seg.index
        seg_max = seg.max_timestamp
        for base, mt, size, cnt in metas:
            index.on_batch(base, pos, mt)
            pos += size
            if cnt and (seg_max is None or mt > seg_max):
                seg_max = mt
        seg.max_timestamp = seg_max
        if seg.first_timestamp is None:
            seg.first_timestamp = first_ts
        if seg.first_append_ns is None:
            seg.first_append_ns = now_ns
        seg.next_offset = next_offset
        seg.record_count += count
        self._leo = next_offset
        self._unsynced_msgs += count
        if self._unsynced_since_ns is None:
            self._unsynced_since_ns = now_ns
        if len(index._pending_off) > _INDEX_FLUSH_BYTES:
            seg.flush_index()
        return AppendResult(first, next_offset - 1, self.sync_due(now_ns))

    def _epoch_for(self, leader_epoch: int | None) -> int:
        entries = self.epochs._entries
        latest = entries[-1][0] if entries else -1
        if leader_epoch is None:
            return max(latest, 0)
        if leader_epoch < latest:
            raise EpochRegressionError(latest, leader_epoch)
        return leader_epoch

    def _write(self, seg: Segment, pieces: list[bytes], total: int) -> None:
        wfd = seg.wfd
        assert wfd is not None
        old = seg.size
        try:
            if len(pieces) > _IOV_MAX:
                pieces = [b"".join(pieces)]
            written = os.writev(wfd, pieces)
            if written != total:
                rest = b"".join(pieces)[written:]
                while rest:
                    rest = rest[os.write(wfd, rest) :]
        except BaseException:
            os.ftruncate(wfd, old)  # never leave half a batch behind a live log
            raise
        seg.size = old + total
        seg.dirty = True

    # ------------------------------------------------------------------ fsync

    def sync_due(self, now_ns: int) -> bool:
        """Whether the fsync policy wants ``sync()`` now (also after a segment roll)."""
        if self._unsynced_since_ns is None:
            return self._roll_sync_pending
        pol = self.options.fsync
        kind = pol.kind
        if kind == "batch" or self._roll_sync_pending:
            return True
        if kind == "interval":
            return now_ns - self._unsynced_since_ns >= pol.interval_ns
        if kind == "messages":
            return self._unsynced_msgs >= pol.messages
        return False

    @property
    def sync_deadline_ns(self) -> int | None:
        """Under the interval policy, when the pending data must be synced (else None)."""
        pol = self.options.fsync
        if pol.kind != "interval" or self._unsynced_since_ns is None:
            return None
        return self._unsynced_since_ns + pol.interval_ns

    def sync(self) -> int:
        """fsync every segment with unsynced bytes; return the newest durable offset.

        Safe to run in a worker thread while the main thread reads; never concurrently with
        append, truncate or clean (the writer serialises those).
        """
        self._check_open()
        target = self._leo - 1
        msgs = self._unsynced_msgs
        for seg in list(self._segments):
            if seg.index.pending():
                seg.flush_index()
            if seg.dirty:
                seg.fsync()
        if self._dir_dirty:
            self._dir_dirty = False
            checkpoint.fsync_dir(self.path)
        self._roll_sync_pending = False
        self._unsynced_msgs -= msgs
        self._unsynced_since_ns = None
        if target > self._durable:
            self._durable = target
        return self._durable

    def _maybe_roll(self, nbytes: int, now_ns: int) -> Segment:
        seg = self._segments[-1]
        opts = self.options
        age_max = opts.segment_age_ns_max
        if seg.size == 0 or (not age_max and seg.size + nbytes <= opts.segment_bytes_max):
            return seg
        if seg.size + nbytes <= opts.segment_bytes_max and not (
                age_max and seg.first_append_ns is not None
                and now_ns - seg.first_append_ns >= age_max):
            return seg
        seg.flush_index()
        seg.close_writer()
        new = Segment(self.path, self._leo, opts.index_interval_bytes, create=True)
        new.open_for_append()
        self._add_segment(new)
        self._dir_dirty = True
        self._roll_sync_pending = True  # the sealed segment should reach disk soon
        return new

    # ------------------------------------------------------------------ reads

    def _find(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._bases, offset) - 1)

    def read_raw(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding ``offset`` (or the next one after a gap), at most
        ``max_bytes`` but always at least one batch; from one segment only. Reads up to the LEO
        (uncommitted included: followers need it). Below the oldest offset it starts at the
        oldest; at or past the LEO it returns b"". CRCs are not checked here: the follower's
        ``append_raw`` checks them."""
        self._check_open()
        if offset >= self._leo:
            return b""
        max_bytes = max(1, min(max_bytes, self.options.read_bytes_max))
        segs = self._segments
        for i in range(self._find(offset), len(segs)):
            buf, s, e, _ = segs[i].read_chunk(offset, max_bytes)
            if e > s:
                return buf if s == 0 and e == len(buf) else buf[s:e]
        return b""

    def read_records(self, offset: int, max_bytes: int,
                     max_offset: int | None = None) -> list[Record]:
        """Decoded records with ``offset <= o <= max_offset`` (default: up to the LEO),
        reading about ``max_bytes`` of batches (at least one batch). Every batch's CRC is
        verified, so a reader never sees corrupt data (``CorruptLogError`` instead)."""
        self._check_open()
        last = self._leo - 1 if max_offset is None else min(max_offset, self._leo - 1)
        out: list[Record] = []
        if offset > last:
            return out
        budget = max(1, min(max_bytes, self.options.read_bytes_max))
        segs = self._segments
        i = self._find(offset)
        parse = fmt.parse_header
        crc_ok = fmt.crc_ok
        decode = fmt.decode_into
        # The byte budget may be spent on a batch whose records all lie below ``offset`` (key
        # compaction removed the batch's records at and after it): keep going until a record
        # comes out, so a reader never mistakes a compacted gap for the end of the log.
        while i < len(segs) and (budget > 0 or not out):
            seg = segs[i]
            buf, p, e, b0 = seg.read_chunk(offset, max(1, budget))
            if p == e:
                i += 1
                continue
            budget -= e - p
            while p < e:
                h = parse(buf, p)
                if not crc_ok(buf, p, h.size, h.crc):
                    raise seg.corrupt(h.base_offset, b0 + p, "CRC mismatch on read")
                decode(buf, p, h, offset, last, out)
                if h.last_offset >= last:
                    return out
                offset = h.next_offset
                p += h.size
            if offset >= seg.next_offset:
                i += 1
        return out

    def offset_for_timestamp(self, timestamp_ns: int) -> int | None:
        """The first offset whose record has a timestamp >= ``timestamp_ns``; None when no
        record does (the caller then uses the LEO: "wait for the next message")."""
        self._check_open()
        for seg in self._segments:
            if seg.max_timestamp is None or seg.max_timestamp < timestamp_ns:
                continue
            off = seg.index.lookup_time(timestamp_ns)
            while off < seg.next_offset:
                buf, p, e, b0 = seg.read_chunk(off, 1 << 20)
                if p == e:
                    break
                while p < e:
                    h = fmt.parse_header(buf, p)
                    if h.record_count and h.max_timestamp >= timestamp_ns:
                        if not fmt.crc_ok(buf, p, h.size, h.crc):
                            raise seg.corrupt(h.base_offset, b0 + p, "CRC mismatch on read")
                        recs: list[Record] = []
                        fmt.decode_into(buf, p, h, 0, h.last_offset, recs)
                        for r in recs:
                            if r.timestamp_ns >= timestamp_ns:
                                return r.offset
                    off = h.next_offset
                    p += h.size
        return None

    # ------------------------------------------------------------------ truncation

    def truncate(self, offset: int) -> None:
        """Drop every offset >= ``offset`` (follower reconciliation). Durable on return.

        May cut below the HW: the caller (replication layer) decides whether that is allowed
        and asserts it; the HW is lowered to LEO - 1 if needed. A batch holding ``offset`` in
        its middle is rewritten to keep its records below ``offset``.
        """
        self._check_open()
        if offset >= self._leo:
            return
        if offset <= self._segments[0].base_offset:
            self.reset_to(offset)
            return
        doomed = []
        while self._segments[-1].base_offset >= offset:
            doomed.append(self._segments.pop())
            self._bases.pop()
        self._delete_segments(doomed)
        seg = self._segments[-1]
        if seg.next_offset == offset:  # the cut falls exactly on a segment boundary
            seg.open_for_append()
            checkpoint.fsync_dir(self.path)
            self._leo = offset
            self._after_truncate()
            return
        buf, p, e, b0 = seg.read_chunk(offset, 1)
        assert e > p, "an offset below the LEO must be in the last segment"
        h = fmt.parse_header(buf, p)
        keep: list[tuple[int, int, bytes]] = []
        if h.base_offset < offset:
            if not fmt.crc_ok(buf, p, h.size, h.crc):
                raise seg.corrupt(h.base_offset, b0 + p, "CRC mismatch while truncating")
            keep = [r for r in fmt.iter_record_fields(buf, p, h) if h.base_offset + r[0] < offset]
        seg.close_writer()
        seg.truncate_file(b0 + p)
        seg.open_for_append()
        if h.base_offset < offset:
            data = fmt.encode_sparse_batch(h.base_offset, h.leader_epoch,
                                           offset - 1 - h.base_offset, h.first_timestamp, keep)
            self._write(seg, [data], len(data))
            seg.scan(verify_crc=False)
            seg.index.write_all(seg.index_path, seg.time_path)
        seg.fsync()
        checkpoint.fsync_dir(self.path)
        self._leo = seg.next_offset
        assert self._leo == offset, (self._leo, offset)
        self._after_truncate()

    def reset_to(self, offset: int) -> None:
        """Drop everything and start empty at ``offset`` (a follower too far behind the
        leader's retention). Clears the epoch cache."""
        self._check_open()
        doomed = list(reversed(self._segments))
        self._segments.clear()
        self._bases.clear()
        self._delete_segments(doomed)
        seg = Segment(self.path, offset, self.options.index_interval_bytes, create=True)
        seg.open_for_append()
        self._add_segment(seg)
        checkpoint.fsync_dir(self.path)
        self._leo = offset
        self.epochs.clear()
        self._after_truncate()

    def _after_truncate(self) -> None:
        self.epochs.truncate_from_end(self._leo)
        self._hw = min(self._hw, self._leo - 1)
        self._durable = min(self._durable, self._leo - 1)
        self._unsynced_msgs = 0
        self._unsynced_since_ns = None

    def _delete_segments(self, doomed: list[Segment]) -> None:
        """Crash-safe removal: rename to ``.deleted`` (log first), fsync dir, then unlink.
        Open finishes a half-done deletion by removing ``.deleted`` files and orphans."""
        if not doomed:
            return
        renamed = []
        for seg in doomed:
            seg.close()
            for path in (seg.log_path, seg.index_path, seg.time_path):
                if os.path.exists(path):
                    os.replace(path, path + DELETED_SUFFIX)
                    renamed.append(path + DELETED_SUFFIX)
        checkpoint.fsync_dir(self.path)
        for path in renamed:
            os.unlink(path)

    # ------------------------------------------------------------------ cleaning

    def clean(self, now_ns: int) -> CleanReport:
        """Run retention then (if enabled) compaction to completion."""
        report = CleanReport()
        for _ in self.clean_steps(now_ns, report):
            pass
        return report

    def clean_steps(self, now_ns: int, report: CleanReport) -> Iterator[None]:
        """Retention and compaction one segment per step, so a driver can interleave appends
        between steps (each step leaves the log consistent; work already planned for a
        segment that changed meanwhile is skipped)."""
        opts = self.options
        limits = RetentionLimits(opts.retention_bytes_max, opts.retention_messages_max,
                                 opts.retention_age_ns_max)
        plan = plan_retention(self.segment_infos(), limits, now_ns)
        for base, reason in zip(plan.delete, plan.reasons, strict=True):
            self._check_open()
            if len(self._segments) < 2 or self._segments[0].base_offset != base:
                break
            seg = self._segments.pop(0)
            self._bases.pop(0)
            self._delete_segments([seg])
            self.epochs.truncate_from_start(self._segments[0].base_offset)
            report.deleted_segments.append(base)
            report.deleted_reasons.append(reason)
            log.info("%s: retention deleted segment %d (%s)", self.path, base, reason)
            yield
        if opts.compact_enabled and len(self._segments) > 1 and self._hw >= 0:
            hw = self._hw
            key_map = build_key_map(self, hw)
            yield
            for seg in list(self._segments[:-1]):
                self._check_open()
                if seg not in self._segments[:-1] or seg.base_offset > hw:
                    continue
                removed = compact_segment(seg, key_map, hw)
                if removed:
                    self._dir_dirty = True
                    report.compacted_segments.append(seg.base_offset)
                    report.removed_records += removed
                yield
        report.oldest_offset = self.oldest_offset

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Sync, checkpoint the HW, release files. Idempotent."""
        if self._closed:
            return
        self.sync()
        checkpoint.write_hw(self.path, self._hw)
        for seg in self._segments:
            seg.close()
        self._closed = True

    def __enter__(self) -> CommitLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(self.path)
