"""lb.storage: the partition commit log. Synchronous, stdlib + crc32c, no clock, no trio.

Directory layout (Liftbridge's): one directory per partition holding segments named by their
20-digit zero-padded base offset -- ``<base>.log`` (record batches), ``<base>.index`` (sparse
offset index), ``<base>.timeindex`` (time index) -- plus ``replication-offset-checkpoint``
(the HW) and ``leader-epoch-checkpoint`` (epoch -> start offset), both small text files
replaced atomically (temp + fsync + rename + dir fsync).

On-disk format, version 2 (details in ``lb.storage.batch``)
----------------------------------------------------------
A ``.log`` file is a sequence of Kafka-style record batches. A batch has one 47-byte header:
base offset, length, leader epoch, a version byte (2), a CRC-32C (``crc32c`` package) over the
whole batch except the CRC field, attributes, last offset delta, first and max timestamp (ns),
record count. Then its records, stored as columns: the body lengths (``u32`` each), an offset
delta column only when the offsets have gaps (after compaction), a timestamp delta column only
when the timestamps differ, and the bodies back to back. An ingest batch thus costs 4 bytes of
framing a record, and Python builds or splits it with a few calls per batch rather than a few
per record. The body is the protobuf encoding of the fixed fields of Liftbridge's ``Message``
(``lb.storage.records``), so Subscribe can emit a ``Message`` by prepending
offset/timestamp/stream/partition fields without re-encoding. Appending N messages is one
batch and one ``writev``; replication copies whole raw batches (``read_raw`` ->
``append_raw``) without decoding records. Batches chain: each starts where the previous ends
(``base + last_offset_delta + 1``); compaction keeps even emptied batches so the chain has no
holes and offsets are preserved. Version 1 (row framing, 16 bytes a record) was never
released; a version-1 batch is reported as an unknown format version.

Public API (``CommitLog``)
-------------------------
``CommitLog.open(path, options)`` recovers and opens (``log.recovery_report``);
``append(messages, now_ns, leader_epoch=None)`` / ``append_bodies(bodies, timestamps_ns,
now_ns, leader_epoch=None)`` -> ``AppendResult(first_offset, last_offset, sync_due)``;
``append_raw(data, now_ns, leader_epoch=None)``; ``sync() -> durable offset``;
``sync_due(now_ns)``, ``sync_deadline_ns``, ``durable_offset``; ``read_raw(offset,
max_bytes)``; ``read_records(offset, max_bytes, max_offset=None)``;
``offset_for_timestamp(ts_ns)``; ``oldest_offset``, ``newest_offset``, ``next_offset`` (LEO),
``hw``, ``set_hw``, ``checkpoint_hw``; ``truncate(offset)``, ``reset_to(offset)``;
``epochs.assign(epoch, start)``, ``epochs.end_offset_for(epoch)``; ``clean(now_ns)`` /
``clean_steps(now_ns, report)``; ``segment_infos()``, ``statistics()``; ``close()``.

Fsync policies and the writer contract
--------------------------------------
``FsyncPolicy``: ``never`` (the OS decides), ``interval`` (sync once the oldest unsynced append
is D ns old), ``batch`` (group commit: every append makes a sync due, and a batch is written
only once a sync covers it) and ``messages`` (every N messages). Policies never fsync inside
``append``; they only say so: the writer does ``r = log.append(...)``; if ``r.sync_due``, runs
``await trio.to_thread.run_sync(log.sync)`` and acknowledges offsets ``<= log.durable_offset``.
Appends made while a sync runs are covered by the next one (group commit). ``sync()`` may run
in a worker thread while the main thread reads (reads use ``os.pread`` on their own
descriptors) but never concurrently with append/truncate/clean. A segment roll always makes a
sync due so that a sealed segment reaches disk soon, whatever the policy.

The default is ``never``, like Liftbridge and Kafka: durability comes from replication to the
ISR (an ``ALL`` ack means every ISR member has the data, in page cache), throughput stays at
buffered-write speed and appends never wait for the disk. The price: a power loss (not a
process crash: the page cache survives SIGKILL) can lose recently acknowledged messages on
every replica at once. Streams that need single-node durability choose ``batch`` (one fsync
per writer batch, ~6k fsync/s on this machine) or ``interval``.

Crash recovery (on open)
------------------------
Leftovers of unfinished work are resolved: ``*.deleted`` (deletion: finished), ``*.cleaned``
(compaction swap: rolled back), ``*.tmp`` checkpoints, orphan index files. The last segment is
scanned with CRC checks; a torn or corrupt tail (a batch running past EOF, an unparseable
header, or a bad CRC on the final batch or one not followed by a valid batch) is cut off,
logged on logger ``lb.storage`` and recorded in ``recovery_report`` (bytes, offsets). Sealed
segments are scanned too (CRC-checked unless ``verify_on_open=False``). A sealed segment that
ends in half a batch lost its tail to a power loss before the roll's fsync: it is cut the same
way and every later segment is removed (``recovery_report.dropped_segments``), as Kafka does;
no fsync policy promised their data, since a sync covers the sealed segment first. Any other
bad batch in a sealed segment, a bad batch followed by a valid one in the last segment, or a
gap between segments raises ``CorruptLogError`` naming the segment and offset. Indexes are
recomputed during the scan and compared with the files: missing or corrupt ones are rewritten
and reported; stale ones (entries buffered at the crash) are completed. The epoch cache is cut
to the LEO, and rebuilt from batch headers if its file is missing or corrupt. The HW checkpoint
is clamped to the LEO. Cost: open reads the whole log once (a full scan at disk/CRC speed plus
~1 µs of Python per batch).

Read verification: ``read_records`` and ``offset_for_timestamp`` verify every batch's CRC
before decoding, so readers never see corrupt data. ``read_raw`` does not (the follower's
``append_raw`` verifies instead).

Retention (``retention.plan_retention``, a pure function) removes whole segments, oldest
first, never the active one, by bytes / messages / age (0 = unlimited); compaction
(``compaction``) keeps the latest message per key at or below the HW. Both run from
``clean(now_ns)``, one segment per step (``clean_steps``), with crash-safe rename protocols.
"""

from lb.storage.commitlog import (
    AppendResult,
    CleanReport,
    CommitLog,
    LogStatistics,
    RecoveryReport,
)
from lb.storage.epochs import LeaderEpochCache
from lb.storage.errors import (
    CorruptLogError,
    EpochRegressionError,
    InvalidBatchError,
    LogClosedError,
    LogError,
    OffsetMismatchError,
)
from lb.storage.options import FsyncPolicy, LogOptions, options_from_liftbridge
from lb.storage.records import (
    MessageFields,
    MessageIn,
    Record,
    decode_body,
    encode_body,
    key_of,
    message_bytes,
)

__all__ = [
    "AppendResult",
    "CleanReport",
    "CommitLog",
    "CorruptLogError",
    "EpochRegressionError",
    "FsyncPolicy",
    "InvalidBatchError",
    "LeaderEpochCache",
    "LogClosedError",
    "LogError",
    "LogOptions",
    "LogStatistics",
    "MessageFields",
    "MessageIn",
    "OffsetMismatchError",
    "Record",
    "RecoveryReport",
    "decode_body",
    "encode_body",
    "key_of",
    "message_bytes",
    "options_from_liftbridge",
]
