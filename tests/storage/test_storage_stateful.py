"""Hypothesis stateful test: CommitLog against an in-memory model.

The model is a dict offset -> (timestamp, epoch, body) plus LEO, HW and the epoch list. Rules
cover append, raw append, reads (bounded), read by timestamp, truncate, segment roll (small
segments + age), retention, compaction and close-and-reopen.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import tempfile

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lb.storage import CommitLog, LogOptions, MessageIn, encode_body, key_of
from lb.storage import batch as fmt

OPTS = LogOptions(segment_bytes_max=1_500, segment_age_ns_max=50, index_interval_bytes=200,
                  batch_bytes_max=600, batch_messages_max=8)

keys = st.sampled_from([b"", b"a", b"b", b"c"])
values = st.binary(max_size=60)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="lb-stateful-")
        self.log = CommitLog.open(self.dir, OPTS)
        self.model: dict[int, tuple[int, int, bytes]] = {}
        self.leo = 0
        self.hw = -1
        self.epoch = 0
        self.now = 1_000

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- writes ---------------------------------------------------------------

    @rule(msgs=st.lists(st.tuples(keys, values, st.integers(0, 3)), min_size=1, max_size=20),
          dt=st.integers(0, 30), bump=st.booleans())
    def append(self, msgs, dt, bump):
        self.now += dt
        if bump:
            self.epoch += 1
        ms = [MessageIn(v, key=k, timestamp_ns=(self.now - back if back else 0))
              for k, v, back in msgs]
        r = self.log.append(ms, now_ns=self.now, leader_epoch=self.epoch)
        assert r.first_offset == self.leo
        for i, m in enumerate(ms):
            self.model[self.leo + i] = (m.timestamp_ns or self.now, self.epoch, encode_body(m))
        self.leo += len(ms)
        assert r.last_offset == self.leo - 1

    @rule(bodies=st.lists(values, min_size=1, max_size=5), bump=st.booleans())
    def append_raw(self, bodies, bump):
        self.now += 1
        if bump:
            self.epoch += 1
        self.log.append_raw(b"".join(fmt.encode_batch(self.leo, self.epoch, bodies, self.now)),
                            now_ns=self.now)
        for i, b in enumerate(bodies):
            self.model[self.leo + i] = (self.now, self.epoch, b)
        self.leo += len(bodies)

    @rule(data=st.data())
    def set_hw(self, data):
        self.hw = data.draw(st.integers(min(self.hw, self.leo - 1), self.leo - 1))
        self.log.set_hw(self.hw)

    @precondition(lambda self: self.leo > 0)
    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(max(0, self.hw + 1), self.leo))
        event(f"truncate with several segments: {len(self.log.segment_infos()) > 1}")
        self.log.truncate(offset)
        first_base = self.log.segment_infos()[0].base_offset
        self.model = {o: v for o, v in self.model.items() if o < offset}
        self.leo = offset
        assert self.log.next_offset == offset and first_base <= offset
        self.hw = min(self.hw, offset - 1)

    # -- reads ----------------------------------------------------------------

    @rule(data=st.data(), max_bytes=st.integers(1, 3_000))
    def read(self, data, max_bytes):
        start = data.draw(st.integers(0, self.leo + 2))
        got = self.log.read_records(start, max_bytes)
        expected = sorted(o for o in self.model if o >= start)
        assert [r.offset for r in got] == expected[: len(got)]
        if expected:
            assert got, "a read returns at least one batch when data exists"
        for r in got:
            ts, epoch, body = self.model[r.offset]
            assert (r.timestamp_ns, r.leader_epoch, r.body) == (ts, epoch, body)

    @rule(data=st.data())
    def read_raw_round_trip(self, data):
        start = data.draw(st.integers(0, self.leo))
        raw = self.log.read_raw(start, 500)
        if start >= self.leo or not self.model:
            assert raw == b"" or not self.model
            return
        h = fmt.parse_header(raw)
        assert h.next_offset > start or h.base_offset > start

    @rule(dt=st.integers(-40, 40))
    def offset_for_timestamp(self, dt):
        target = self.now + dt
        candidates = [o for o in sorted(self.model) if self.model[o][0] >= target]
        assert self.log.offset_for_timestamp(target) == (candidates[0] if candidates else None)

    # -- maintenance ------------------------------------------------------------

    @rule(limit=st.integers(1, 60))
    def retention(self, limit):
        self.log.options = dataclasses.replace(OPTS, retention_messages_max=limit)
        before = self.log.segment_infos()
        rep = self.log.clean(now_ns=self.now)
        self.log.options = OPTS
        after = self.log.segment_infos()
        assert after[-1].base_offset == before[-1].base_offset  # active never deleted
        assert len(before) - len(after) == len(rep.deleted_segments)
        if rep.deleted_segments:
            assert sum(s.record_count for s in after) <= limit or len(after) == 1
        event(f"retention deleted segments: {bool(rep.deleted_segments)}")
        cut = after[0].base_offset
        self.model = {o: v for o, v in self.model.items() if o >= cut}

    @rule()
    def compact(self):
        self.log.options = dataclasses.replace(OPTS, compact_enabled=True)
        active_base = self.log.segment_infos()[-1].base_offset
        rep = self.log.clean(now_ns=self.now)
        event(f"compaction removed records: {rep.removed_records > 0}")
        self.log.options = OPTS
        latest: dict[bytes, int] = {}
        for o in sorted(self.model):
            k = key_of(self.model[o][2])
            if k and o <= self.hw:
                latest[k] = o
        if self.hw >= 0 and len(self.log.segment_infos()) > 1:
            self.model = {
                o: v for o, v in self.model.items()
                if o >= active_base or o > self.hw or not key_of(v[2])
                or latest[key_of(v[2])] == o}

    @rule()
    def reopen(self):
        self.log.close()
        self.log = CommitLog.open(self.dir, OPTS)
        assert self.log.recovery_report.clean, self.log.recovery_report
        assert self.log.hw == self.hw

    # -- invariants -------------------------------------------------------------

    @invariant()
    def offsets_match(self):
        log = self.log
        assert log.next_offset == self.leo and log.newest_offset == self.leo - 1
        assert log.hw == self.hw <= log.newest_offset
        if self.model:
            assert log.oldest_offset <= min(self.model)
        infos = log.segment_infos()
        for a, b in itertools.pairwise(infos):
            assert a.next_offset == b.base_offset
        assert infos[-1].next_offset == self.leo


TestLogMachine = LogMachine.TestCase
TestLogMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
