from __future__ import annotations

import dataclasses
import os
import threading

import pytest
from storage_helpers import body_for, fill, segment_files, small_options

from lb.storage import (
    CommitLog,
    EpochRegressionError,
    FsyncPolicy,
    InvalidBatchError,
    LogClosedError,
    LogOptions,
    MessageIn,
    OffsetMismatchError,
    checkpoint,
    options_from_liftbridge,
)
from lb.storage import batch as fmt
from lb.storage.options import SECOND_NS
from lb.storage.retention import RetentionLimits, SegmentInfo, plan_retention


def values(recs):
    return [r.decode().value for r in recs]


def test_empty_log_offsets(tmp_path):
    log = CommitLog.open(tmp_path / "p", LogOptions())
    assert (log.oldest_offset, log.newest_offset, log.next_offset, log.hw) == (-1, -1, 0, -1)
    assert log.read_records(0, 1000) == [] and log.read_raw(0, 1000) == b""
    assert log.offset_for_timestamp(0) is None
    assert os.path.basename(segment_files(str(tmp_path / "p"))[0]) == "0" * 20 + ".log"
    log.close()


def test_append_read_reopen(tmp_path):
    log = CommitLog.open(tmp_path, small_options())
    r = log.append([MessageIn(b"a"), MessageIn(b"b", key=b"k", headers={"h": b"v"})], now_ns=7)
    assert (r.first_offset, r.last_offset) == (0, 1)
    fill(log, 30, 4)
    assert (log.oldest_offset, log.newest_offset) == (0, 121)
    assert len(segment_files(str(tmp_path))) > 3  # rolled by bytes
    recs = log.read_records(0, 1 << 20)
    assert [r.offset for r in recs] == list(range(122))
    assert recs[1].decode().headers == {"h": b"v"} and recs[1].key() == b"k"
    assert recs[0].timestamp_ns == 7
    assert values(recs[2:]) == [body_for(o) for o in range(2, 122)]
    log.set_hw(100)
    log.close()
    with pytest.raises(LogClosedError):
        log.read_records(0, 10)
    log = CommitLog.open(tmp_path, small_options())
    assert log.recovery_report.clean, log.recovery_report
    assert log.hw == 100 and log.newest_offset == 121
    assert log.read_records(0, 1 << 20) == recs
    for start in (0, 5, 37, 121):  # every start offset, bounded reads
        got = log.read_records(start, 300)
        assert got and got[0].offset == start
    assert log.read_records(50, 1 << 20, max_offset=60)[-1].offset == 60
    log.close()


def test_read_bounds_and_raw(tmp_path):
    log = CommitLog.open(tmp_path, LogOptions(index_interval_bytes=128))
    for i in range(50):
        log.append_bodies([b"x" * 100] * 3, None, now_ns=i)
    raw = log.read_raw(31, 500)
    h = fmt.parse_header(raw)
    assert h.base_offset == 30 and len(raw) <= 500 and len(raw) % h.size == 0
    big = log.read_raw(0, 1)  # at least one batch even if larger than max_bytes
    assert fmt.parse_header(big).size == len(big)
    assert log.read_raw(150, 10_000) == b""
    recs = log.read_records(4, 1)  # at least the batch holding offset 4
    assert [r.offset for r in recs] == [4, 5]
    log.close()


def test_append_splits_large_appends_into_batches(tmp_path):
    log = CommitLog.open(tmp_path, LogOptions(batch_bytes_max=1_000, batch_messages_max=7))
    r = log.append_bodies([b"y" * 100] * 40, [1000 + i for i in range(40)], now_ns=5)
    assert (r.first_offset, r.last_offset) == (0, 39)
    raw = log.read_raw(0, 1 << 20)
    pos, bases = 0, []
    while pos < len(raw):
        h = fmt.parse_header(raw, pos)
        assert h.record_count <= 7 and h.size <= 1_000 + fmt.HEADER_SIZE
        bases.append(h.base_offset)
        pos += h.size
    assert len(bases) > 5
    assert [r.timestamp_ns for r in log.read_records(0, 1 << 20)] == [1000 + i for i in range(40)]
    log.close()


def test_replication_copies_raw_batches(tmp_path):
    leader = CommitLog.open(tmp_path / "l", small_options())
    follower = CommitLog.open(tmp_path / "f", small_options())
    fill(leader, 10, 3, epoch=1)
    fill(leader, 10, 3, epoch=4)
    while follower.next_offset < leader.next_offset:
        chunk = leader.read_raw(follower.next_offset, 400)
        follower.append_raw(chunk, now_ns=1)
    assert follower.read_records(0, 1 << 20) == leader.read_records(0, 1 << 20)
    assert follower.epochs.entries == leader.epochs.entries == [(1, 0), (4, 30)]
    # whole-log byte equality: the follower stores exactly the leader's batches
    assert leader.read_raw(0, 1 << 20)[:100] == follower.read_raw(0, 1 << 20)[:100]
    leader.close()
    follower.close()


def test_append_raw_validation(tmp_path):
    log = CommitLog.open(tmp_path, LogOptions())
    log.append([MessageIn(b"a")], now_ns=1, leader_epoch=3)
    good = b"".join(fmt.encode_batch(1, 3, [b"b", b"c"], 5))
    bad = bytearray(good)
    bad[-1] ^= 1
    with pytest.raises(InvalidBatchError):
        log.append_raw(bytes(bad), now_ns=1)
    with pytest.raises(InvalidBatchError):
        log.append_raw(good[:-3], now_ns=1)
    with pytest.raises(OffsetMismatchError) as ei:
        log.append_raw(b"".join(fmt.encode_batch(5, 3, [b"b"], 5)), now_ns=1)
    assert (ei.value.expected, ei.value.got) == (1, 5)
    with pytest.raises(EpochRegressionError):
        log.append_raw(b"".join(fmt.encode_batch(1, 2, [b"b"], 5)), now_ns=1)
    with pytest.raises(InvalidBatchError):
        log.append_raw(good, now_ns=1, leader_epoch=2)
    assert log.next_offset == 1  # nothing written by failed attempts
    r = log.append_raw(good, now_ns=1)
    assert (r.first_offset, r.last_offset) == (1, 2)
    with pytest.raises(EpochRegressionError):
        log.append([MessageIn(b"z")], now_ns=1, leader_epoch=2)
    log.close()


def test_offset_for_timestamp(tmp_path):
    log = CommitLog.open(tmp_path, small_options(index_interval_bytes=64))
    for i in range(100):
        log.append_bodies([b"v%d" % i], None, now_ns=1000 + 10 * i)
    assert log.offset_for_timestamp(0) == 0
    assert log.offset_for_timestamp(1000) == 0
    assert log.offset_for_timestamp(1001) == 1
    assert log.offset_for_timestamp(1500) == 50
    assert log.offset_for_timestamp(1990) == 99
    assert log.offset_for_timestamp(1991) is None
    # non-monotonic client timestamps: first offset whose timestamp >= target
    log.append_bodies([b"a", b"b"], [500, 5000], now_ns=0)
    assert log.offset_for_timestamp(1991) == 101
    log.close()


def test_truncate_mid_batch_and_epochs(tmp_path):
    log = CommitLog.open(tmp_path, small_options())
    fill(log, 5, 4, epoch=1)  # 0..19
    fill(log, 5, 4, epoch=2)  # 20..39
    fill(log, 5, 4, epoch=5)  # 40..59
    assert log.epochs.end_offset_for(1) == (1, 20)
    assert log.epochs.end_offset_for(3) == (2, 40)
    assert log.epochs.end_offset_for(5) == (5, 60)
    assert log.epochs.end_offset_for(6) == (-1, -1)
    assert log.epochs.end_offset_for(0) == (0, 0)
    log.set_hw(45)
    log.truncate(42)  # in the middle of batch 40..43
    assert (log.next_offset, log.hw) == (42, 41)
    assert log.epochs.entries == [(1, 0), (2, 20), (5, 40)]
    log.truncate(40)
    assert log.epochs.entries == [(1, 0), (2, 20)]
    assert log.epochs.end_offset_for(2) == (2, 40)
    log.truncate(21)
    assert [r.offset for r in log.read_records(0, 1 << 20)] == list(range(21))
    log.append([MessageIn(b"new")], now_ns=1, leader_epoch=7)
    log.close()
    log = CommitLog.open(tmp_path, small_options())
    assert log.recovery_report.clean, log.recovery_report
    assert log.epochs.entries == [(1, 0), (2, 20), (7, 21)]
    recs = log.read_records(0, 1 << 20)
    assert [r.offset for r in recs] == list(range(22)) and recs[-1].decode().value == b"new"
    log.truncate(0)
    assert (log.oldest_offset, log.newest_offset, log.epochs.entries) == (-1, -1, [])
    log.close()


def test_reset_to(tmp_path):
    log = CommitLog.open(tmp_path, small_options())
    fill(log, 5, 4)
    log.reset_to(1000)
    assert (log.oldest_offset, log.next_offset) == (-1, 1000)
    log.append([MessageIn(b"x")], now_ns=1)
    assert log.oldest_offset == 1000
    log.close()
    log = CommitLog.open(tmp_path, small_options())
    assert [r.offset for r in log.read_records(0, 100)] == [1000]
    log.close()


def test_roll_by_age(tmp_path):
    log = CommitLog.open(tmp_path, LogOptions(segment_age_ns_max=100))
    log.append_bodies([b"a"], None, now_ns=1_000)
    log.append_bodies([b"b"], None, now_ns=1_050)
    assert len(log.segment_infos()) == 1
    r = log.append_bodies([b"c"], None, now_ns=1_100)
    assert len(log.segment_infos()) == 2 and r.sync_due  # a roll asks for a sync
    log.close()


def test_fsync_policies(tmp_path):
    def mk(name, pol):
        return CommitLog.open(tmp_path / name, LogOptions(fsync=pol))

    never = mk("n", FsyncPolicy.never())
    assert not never.append_bodies([b"a"], None, now_ns=0).sync_due
    assert never.durable_offset == -1
    assert never.sync() == 0 and never.durable_offset == 0
    batch = mk("b", FsyncPolicy.batch())
    assert batch.append_bodies([b"a"], None, now_ns=0).sync_due
    assert batch.append_bodies([b"b"], None, now_ns=0).sync_due
    assert batch.durable_offset == -1 and batch.sync() == 1 and not batch.sync_due(0)
    every = mk("m", FsyncPolicy.every_messages(5))
    assert not every.append_bodies([b"a"] * 3, None, now_ns=0).sync_due
    assert every.append_bodies([b"a"] * 2, None, now_ns=0).sync_due
    every.sync()
    assert every.unsynced_messages == 0
    iv = mk("i", FsyncPolicy.interval(1_000))
    assert not iv.append_bodies([b"a"], None, now_ns=5_000).sync_due
    assert iv.sync_deadline_ns == 6_000
    assert not iv.sync_due(5_999) and iv.sync_due(6_000)
    assert iv.append_bodies([b"a"], None, now_ns=6_100).sync_due
    assert iv.sync() == 1 and iv.sync_deadline_ns is None
    for lg in (never, batch, every, iv):
        lg.close()
    assert FsyncPolicy.parse("interval:50ms") == FsyncPolicy.interval(50_000_000)
    assert FsyncPolicy.parse("messages:10") == FsyncPolicy.every_messages(10)
    assert FsyncPolicy.parse("batch").kind == "batch"
    with pytest.raises(ValueError):
        FsyncPolicy.parse("sometimes")


def test_sync_in_thread_while_reading(tmp_path):
    log = CommitLog.open(tmp_path, small_options(fsync=FsyncPolicy.batch(),
                                                  segment_bytes_max=50_000))
    fill(log, 50, 10)
    expected = log.read_records(0, 1 << 22)
    for _ in range(5):
        fill(log, 5, 10)
        t = threading.Thread(target=log.sync)
        t.start()
        while t.is_alive():
            assert log.read_records(0, 1 << 22)[: len(expected)] == expected
        t.join(timeout=30)
        assert log.durable_offset == log.newest_offset
    log.close()


def test_hw_checkpoint_is_atomic_file(tmp_path):
    log = CommitLog.open(tmp_path, LogOptions())
    fill(log, 2, 5)
    log.set_hw(7)
    log.checkpoint_hw()
    assert checkpoint.read_hw(str(tmp_path)) == 7
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    with pytest.raises(AssertionError):
        log.set_hw(10)  # above the newest offset
    log.close()
    # a checkpoint above the LEO (data lost) is clamped on open
    checkpoint.write_hw(str(tmp_path), 500)
    log = CommitLog.open(tmp_path, LogOptions())
    assert log.hw == 9
    log.close()


def test_retention_plan_pure():
    segs = [SegmentInfo(b, b + 10, 100, 10, 1_000 + b) for b in (0, 10, 20, 30)]
    assert plan_retention(segs, RetentionLimits(), 10**9).delete == ()
    assert plan_retention(segs, RetentionLimits(bytes_max=250), 0).delete == (0, 10)
    assert plan_retention(segs, RetentionLimits(messages_max=5), 0).delete == (0, 10, 20)
    assert plan_retention(segs, RetentionLimits(bytes_max=400), 0).delete == ()
    p = plan_retention(segs, RetentionLimits(age_ns_max=100), 1_115)
    assert p.delete == (0, 10) and p.reasons == ("age", "age")
    assert plan_retention(segs[:1], RetentionLimits(messages_max=1), 0).delete == ()
    p = plan_retention(segs, RetentionLimits(bytes_max=350, messages_max=15), 0)
    assert p.delete == (0, 10, 20) and p.reasons == ("bytes", "messages", "messages")


def test_retention_executes_and_moves_oldest(tmp_path):
    opts = small_options(retention_messages_max=30)
    log = CommitLog.open(tmp_path, opts)
    fill(log, 20, 5, epoch=2)
    fill(log, 20, 5, epoch=3)
    rep = log.clean(now_ns=0)
    assert rep.deleted_segments and rep.deleted_reasons[0] == "messages"
    infos = log.segment_infos()
    assert log.oldest_offset == infos[0].base_offset == rep.oldest_offset
    assert sum(s.record_count for s in infos) <= 30  # the last deleted one tipped it over
    assert log.epochs.entries[0][1] >= log.oldest_offset
    assert log.read_records(0, 1 << 20)[0].offset == log.oldest_offset  # underflow -> oldest
    log.close()
    log = CommitLog.open(tmp_path, opts)
    assert log.recovery_report.clean and log.oldest_offset == infos[0].base_offset
    log.close()


def test_retention_by_age_keeps_active(tmp_path):
    log = CommitLog.open(tmp_path, small_options(retention_age_ns_max=SECOND_NS))
    for i in range(30):
        log.append_bodies([b"z" * 200] * 2, None, now_ns=i)
    rep = log.clean(now_ns=10 * SECOND_NS)
    assert len(log.segment_infos()) == 1 and len(rep.deleted_segments) > 1
    assert log.oldest_offset == log.segment_infos()[0].base_offset
    log.close()


def test_compaction(tmp_path):
    log = CommitLog.open(tmp_path, small_options(compact_enabled=True))
    for i in range(60):
        key = b"" if i % 10 == 0 else b"k%d" % (i % 3)
        log.append([MessageIn(b"v%d" % i, key=key)], now_ns=i)
    log.set_hw(44)
    before = {r.offset: r for r in log.read_records(0, 1 << 20)}
    active_base = log.segment_infos()[-1].base_offset
    rep = log.clean(now_ns=0)
    assert rep.compacted_segments and rep.removed_records > 0
    after = {r.offset: r for r in log.read_records(0, 1 << 20)}
    latest = {}
    for o, r in before.items():
        if o <= 44 and r.key():
            latest[r.key()] = o
    for o, r in before.items():
        keep = o > 44 or o >= active_base or not r.key() or latest[r.key()] == o
        assert (o in after) == keep, o
        if keep:
            assert after[o] == r
    assert log.next_offset == 60
    # reads inside a compacted gap start at the next existing offset
    gap = next(o for o in range(60) if o not in after)
    assert log.read_records(gap, 1 << 20)[0].offset == min(o for o in after if o > gap)
    log.close()
    log = CommitLog.open(tmp_path, small_options(compact_enabled=True))
    assert log.recovery_report.clean, log.recovery_report
    assert {r.offset: r for r in log.read_records(0, 1 << 20)} == after
    assert log.clean(now_ns=0).removed_records == 0  # idempotent
    log.close()


def test_a_small_read_past_a_compacted_tail_of_a_batch_still_returns_records(tmp_path):
    # Found by the stateful test: offsets 0-3 in one batch, key "a" at 3 and again at 4;
    # compaction removes 3, so the batch holding "offset 3" now ends at 2. A one-byte read
    # from 3 used to spend its budget on that batch and return nothing: a subscriber at 3
    # would have waited forever in front of offset 4.
    # One batch a segment: the active segment is never compacted.
    log = CommitLog.open(tmp_path, small_options(compact_enabled=True, segment_bytes_max=60))
    log.append([MessageIn(b"x"), MessageIn(b"y"), MessageIn(b"z"), MessageIn(b"a1", key=b"a")], 0)
    log.append([MessageIn(b"a2", key=b"a")], 1)
    log.append([MessageIn(b"w")], 2)
    log.set_hw(5)
    assert log.clean(now_ns=0).removed_records == 1
    got = log.read_records(3, 1)
    assert [r.offset for r in got] == [4]
    assert [r.offset for r in log.read_records(3, 1 << 20)] == [4, 5]
    log.close()


def test_clean_steps_yield_between_segments(tmp_path):
    log = CommitLog.open(tmp_path, small_options(retention_messages_max=10))
    fill(log, 30, 5)
    from lb.storage import CleanReport

    report = CleanReport()
    steps = 0
    for _ in log.clean_steps(0, report):
        steps += 1
        log.append([MessageIn(b"during clean")], now_ns=1)  # appends interleave fine
    assert steps == len(report.deleted_segments) > 1
    log.close()


def test_options_from_liftbridge():
    o = options_from_liftbridge({"segment.max.bytes": 1024, "retention.max.age": "1h",
                                 "compact.enabled": True, "cleaner.interval": "30s"},
                                fsync=FsyncPolicy.batch())
    assert o.segment_bytes_max == 1024 and o.retention_age_ns_max == 3600 * SECOND_NS
    assert o.compact_enabled and o.cleaner_interval_ns == 30 * SECOND_NS
    assert dataclasses.replace(o, compact_enabled=False).fsync.kind == "batch"
    with pytest.raises(KeyError):
        options_from_liftbridge({"nope": 1})
