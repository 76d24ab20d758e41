"""Corruption and crash-leftover tests: detect, report, keep the valid prefix."""

from __future__ import annotations

import logging
import os

import pytest
from storage_helpers import body_for, fill, flip_byte, segment_files, small_options

from lb.storage import CommitLog, CorruptLogError, MessageIn, checkpoint
from lb.storage import batch as fmt


def make_log(path, n_batches=40, per_batch=3, **kw):
    log = CommitLog.open(path, small_options(**kw))
    fill(log, n_batches, per_batch)
    log.set_hw(log.newest_offset)
    log.close()
    return segment_files(str(path))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def batch_positions(path):
    with open(path, "rb") as f:
        data = f.read()
    pos, out = 0, []
    while pos < len(data):
        h = fmt.parse_header(data, pos)
        out.append((pos, h))
        pos += h.size
    return out


def check_prefix(log):
    recs = log.read_records(0, 1 << 24)
    assert [r.offset for r in recs] == list(range(log.next_offset))
    assert [r.decode().value for r in recs] == [body_for(o) for o in range(log.next_offset)]


def test_torn_tail_is_cut_and_reported(tmp_path, caplog):
    segs = make_log(tmp_path)
    last = segs[-1]
    batches = batch_positions(last)
    pos, h = batches[-1]
    os.truncate(last, pos + 20)  # half a batch header
    with caplog.at_level(logging.WARNING, logger="lb.storage"):
        log = CommitLog.open(tmp_path, small_options())
    rep = log.recovery_report
    assert rep.truncated_bytes == 20 and rep.dropped_first_offset == h.base_offset
    assert rep.truncated_segment == last
    assert log.next_offset == h.base_offset
    assert log.hw == h.base_offset - 1  # clamped
    assert any("torn tail" in r.message for r in caplog.records)
    check_prefix(log)
    log.append([MessageIn(body_for(log.next_offset))], now_ns=1)  # log usable again
    check_prefix(log)
    log.close()


def test_truncated_inside_records(tmp_path):
    segs = make_log(tmp_path)
    pos, h = batch_positions(segs[-1])[-1]
    os.truncate(segs[-1], pos + h.size - 3)
    log = CommitLog.open(tmp_path, small_options())
    rep = log.recovery_report
    assert (rep.dropped_first_offset, rep.dropped_last_offset) == (h.base_offset, h.last_offset)
    assert rep.truncated_bytes == h.size - 3
    check_prefix(log)
    log.close()


def test_crc_mismatch_in_last_batch_is_cut(tmp_path):
    segs = make_log(tmp_path)
    pos, h = batch_positions(segs[-1])[-1]
    flip_byte(segs[-1], pos + h.size - 1)
    log = CommitLog.open(tmp_path, small_options())
    assert log.recovery_report.truncated_reason == "CRC mismatch"
    assert log.next_offset == h.base_offset
    check_prefix(log)
    log.close()


def test_garbage_after_last_batch_is_cut(tmp_path):
    segs = make_log(tmp_path)
    size = os.path.getsize(segs[-1])
    with open(segs[-1], "ab") as f:
        f.write(b"\x00" * 100)
    log = CommitLog.open(tmp_path, small_options())
    assert log.recovery_report.truncated_bytes == 100
    assert os.path.getsize(segs[-1]) == size
    check_prefix(log)
    log.close()


def test_corruption_mid_last_segment_is_an_error(tmp_path):
    segs = make_log(tmp_path, n_batches=10, segment_bytes_max=1 << 20)
    batches = batch_positions(segs[-1])
    assert len(batches) >= 3
    pos, h = batches[1]
    flip_byte(segs[-1], pos + fmt.HEADER_SIZE + 2)
    with pytest.raises(CorruptLogError) as ei:
        CommitLog.open(tmp_path, small_options())
    assert ei.value.segment == segs[-1] and ei.value.offset == h.base_offset
    assert ei.value.position == pos


def test_corruption_in_sealed_segment_is_an_error(tmp_path):
    segs = make_log(tmp_path)
    batches = batch_positions(segs[1])
    pos, h = batches[-1]  # even the last batch of a sealed segment is "middle of the log"
    flip_byte(segs[1], pos + h.size - 1)
    with pytest.raises(CorruptLogError) as ei:
        CommitLog.open(tmp_path, small_options())
    assert ei.value.segment == segs[1] and ei.value.offset == h.base_offset


def test_torn_sealed_segment_is_cut_and_later_segments_dropped(tmp_path, caplog):
    """A power loss can take the tail of a segment sealed just before it (the roll's fsync
    had not run) while later segments reached the disk: keep the prefix, as Kafka does."""
    segs = make_log(tmp_path)
    assert len(segs) >= 3
    pos, h = batch_positions(segs[1])[-1]
    os.truncate(segs[1], pos + h.size - 5)
    with caplog.at_level(logging.WARNING, logger="lb.storage"):
        log = CommitLog.open(tmp_path, small_options())
    rep = log.recovery_report
    assert log.next_offset == h.base_offset and rep.dropped_first_offset == h.base_offset
    assert rep.truncated_segment == segs[1] and not rep.clean
    later = [os.path.basename(p) for p in segs[2:]]
    assert set(later) <= set(rep.dropped_segments)
    assert segment_files(str(tmp_path)) == segs[:2]
    assert any("torn tail" in r.message for r in caplog.records)
    check_prefix(log)
    log.append([MessageIn(body_for(log.next_offset))], now_ns=1)  # the log goes on from there
    log.close()
    assert CommitLog.open(tmp_path, small_options()).recovery_report.clean


def test_torn_sealed_segment_recovery_survives_a_crash_halfway(tmp_path):
    segs = make_log(tmp_path)
    assert len(segs) >= 4
    pos, h = batch_positions(segs[1])[-1]
    os.truncate(segs[1], pos + 3)
    os.unlink(segs[-1])  # as if the drop had removed the newest segment, then crashed
    log = CommitLog.open(tmp_path, small_options())
    assert log.next_offset == h.base_offset
    check_prefix(log)


def test_sealed_segment_missing_whole_batches_is_an_error(tmp_path):
    """A sealed segment cut at a batch boundary leaves a gap in offsets, which cannot be told
    from a segment file removed by hand: an error, the operator decides."""
    segs = make_log(tmp_path)
    pos, _h = batch_positions(segs[0])[-1]
    os.truncate(segs[0], pos)
    with pytest.raises(CorruptLogError) as ei:
        CommitLog.open(tmp_path, small_options())
    assert ei.value.segment == segs[0] and "next segment starts at" in str(ei.value)


def test_corruption_after_open_is_caught_on_read(tmp_path):
    segs = make_log(tmp_path)
    log = CommitLog.open(tmp_path, small_options())
    pos, h = batch_positions(segs[0])[2]
    flip_byte(segs[0], pos + fmt.HEADER_SIZE + 1)
    good = log.read_records(0, 1)  # batches before the bad one still read fine
    assert good and good[-1].offset < h.base_offset
    with pytest.raises(CorruptLogError) as ei:
        log.read_records(h.base_offset, 1 << 20)
    assert (ei.value.segment, ei.value.offset, ei.value.position) == (segs[0], h.base_offset, pos)
    with pytest.raises(CorruptLogError):
        log.offset_for_timestamp(h.first_timestamp)
    log.close()


def test_missing_and_corrupt_indexes_are_rebuilt(tmp_path):
    segs = make_log(tmp_path)
    idx = [s[: -len(".log")] + ".index" for s in segs]
    tidx = [s[: -len(".log")] + ".timeindex" for s in segs]
    originals = [read(p) for p in idx]
    os.unlink(idx[0])
    flip_byte(idx[1], 3)
    os.truncate(tidx[2], os.path.getsize(tidx[2]) - 5)  # a torn entry
    log = CommitLog.open(tmp_path, small_options())
    assert set(log.recovery_report.rebuilt_indexes) == {segs[0], segs[1], segs[2]}
    assert [read(p) for p in idx] == originals
    check_prefix(log)
    log.close()
    log = CommitLog.open(tmp_path, small_options())
    assert log.recovery_report.clean
    log.close()


def test_stale_index_after_crash_is_completed(tmp_path):
    segs = make_log(tmp_path, n_batches=10, segment_bytes_max=1 << 20)
    idx = segs[0][: -len(".log")] + ".index"
    os.truncate(idx, 8)  # one entry left: like a crash before buffered entries were written
    log = CommitLog.open(tmp_path, small_options(segment_bytes_max=1 << 20))
    assert log.recovery_report.completed_indexes == [segs[0]]
    assert log.recovery_report.clean
    log.close()


def test_epoch_checkpoint_rebuilt_from_batches(tmp_path):
    log = CommitLog.open(tmp_path, small_options())
    fill(log, 4, 3, epoch=2)
    fill(log, 4, 3, epoch=9)
    log.close()
    with open(tmp_path / checkpoint.EPOCH_FILE, "w") as f:
        f.write("garbage")
    log = CommitLog.open(tmp_path, small_options())
    assert log.recovery_report.epochs_rebuilt
    assert log.epochs.entries == [(2, 0), (9, 12)]
    log.close()
    os.unlink(tmp_path / checkpoint.EPOCH_FILE)
    log = CommitLog.open(tmp_path, small_options())
    assert log.recovery_report.epochs_rebuilt and log.epochs.entries == [(2, 0), (9, 12)]
    log.close()


def test_epoch_entries_beyond_leo_are_dropped(tmp_path):
    log = CommitLog.open(tmp_path, small_options())
    fill(log, 2, 3, epoch=1)
    log.epochs.assign(4, 6)  # a new leader assigned its epoch, then crashed before appending
    log.close()
    log = CommitLog.open(tmp_path, small_options())
    assert log.epochs.entries == [(1, 0)]
    log.close()


def test_leftovers_of_interrupted_delete_and_compaction(tmp_path):
    segs = make_log(tmp_path)
    first = segs[0]
    stem = first[: -len(".log")]
    # a retention delete that renamed the log but crashed before the rest
    os.replace(first, first + ".deleted")
    # a compaction that wrote its .cleaned output but crashed before the swap
    with open(segs[2] + ".cleaned", "wb") as f:
        f.write(b"partial")
    with open(tmp_path / (checkpoint.HW_FILE + ".tmp"), "wb") as f:
        f.write(b"0\n")
    log = CommitLog.open(tmp_path, small_options())
    rep = log.recovery_report
    names = set(rep.removed_files)
    assert os.path.basename(first) + ".deleted" in names
    assert os.path.basename(stem) + ".index" in names  # orphan index removed
    assert os.path.basename(segs[2]) + ".cleaned" in names
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".deleted", ".cleaned", ".tmp"))]
    assert log.oldest_offset == int(os.path.basename(segs[1])[:20])
    recs = log.read_records(0, 1 << 24)
    assert [r.decode().value for r in recs] == [body_for(r.offset) for r in recs]
    log.close()


def test_missing_middle_segment_is_an_error(tmp_path):
    segs = make_log(tmp_path)
    os.unlink(segs[2])
    with pytest.raises(CorruptLogError) as ei:
        CommitLog.open(tmp_path, small_options())
    assert ei.value.segment == segs[1]
