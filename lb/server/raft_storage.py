"""Durable Raft state for the metadata controller, in ``<data.dir>/raft/``.

Files:

- ``log``: the entries after the latest snapshot, as length-prefixed records
  ``[u32 payload length][u32 CRC-32C of payload][payload]`` where the payload is
  ``[u64 term][u64 index][u8 kind][data]`` (big-endian). Appends go to the end; a suffix that a new
  leader overwrites is cut with ``truncate``; after a snapshot the file is rewritten (to a temp
  file, fsynced, renamed) without the entries the snapshot covers.
- ``hardstate``: term, vote and commit as JSON, replaced atomically.
- ``snapshot-<term>-<index>``: snapshot files (JSON header line + data), the newest
  ``raft.snapshot.retain`` kept.

A torn tail (a crash in the middle of an append) is cut off on open; the Raft core only relies on
what ``persist`` returned from, and ``persist`` fsyncs before returning.

This is synchronous file code: the Raft driver calls it through ``trio.to_thread`` so that an
fsync never blocks the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import crc32c

from lb.raft.messages import ConfState, Entry, EntryKind, HardState, Snapshot

log = logging.getLogger("lb.raft")

_REC = struct.Struct(">II")
_ENTRY = struct.Struct(">QQB")
RECORD_BYTES_MAX = 64 * 1024 * 1024


class RaftStorageError(RuntimeError):
    """The stored Raft state is unreadable beyond a torn tail."""


@dataclass
class RaftState:
    """What was on disk at open."""

    hard_state: HardState
    snapshot: Snapshot
    entries: list[Entry]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _encode_entry(e: Entry) -> bytes:
    payload = _ENTRY.pack(e.term, e.index, int(e.kind)) + e.data
    return _REC.pack(len(payload), crc32c.crc32c(payload)) + payload


def _snapshot_to_bytes(s: Snapshot) -> bytes:
    header = {
        "index": s.index,
        "term": s.term,
        "voters": list(s.conf_state.voters),
        "learners": list(s.conf_state.learners),
        "cluster_id": s.conf_state.cluster_id,
        "crc": crc32c.crc32c(s.data),
    }
    return json.dumps(header).encode() + b"\n" + s.data


def _snapshot_from_bytes(data: bytes, name: str) -> Snapshot:
    head, _, body = data.partition(b"\n")
    try:
        h = json.loads(head)
    except ValueError as exc:
        raise RaftStorageError(f"snapshot {name}: unreadable header") from exc
    if crc32c.crc32c(body) != h["crc"]:
        raise RaftStorageError(f"snapshot {name}: CRC mismatch")
    conf = ConfState(tuple(h["voters"]), tuple(h["learners"]), h["cluster_id"])
    return Snapshot(index=h["index"], term=h["term"], conf_state=conf, data=body)


class RaftStorage:
    """The Raft log, hard state and snapshots of one server."""

    def __init__(self, directory: Path, snapshot_retain: int = 2) -> None:
        self.dir = directory
        self.snapshot_retain = max(1, snapshot_retain)
        self._log_path = directory / "log"
        self._positions: dict[int, int] = {}  # entry index -> byte offset of its record
        self._first_index = 0
        self._last_index = 0
        self._fd = -1

    # -- open / recover ---------------------------------------------------------------------

    def open(self) -> RaftState:
        """Read everything back; cut a torn log tail. Returns the recovered state."""
        self.dir.mkdir(parents=True, exist_ok=True)
        hard_state = self._read_hard_state()
        snapshot = self._read_latest_snapshot()
        entries = self._read_log(snapshot.index)
        self._fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return RaftState(hard_state, snapshot, entries)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def is_empty(self) -> bool:
        """True when nothing was ever persisted (a brand-new server)."""
        return not (self.dir / "hardstate").exists() and not self._snapshot_files()

    def _read_hard_state(self) -> HardState:
        path = self.dir / "hardstate"
        if not path.exists():
            return HardState()
        try:
            h = json.loads(path.read_text())
            return HardState(term=h["term"], vote=h["vote"], commit=h["commit"])
        except (ValueError, KeyError) as exc:
            raise RaftStorageError(f"{path}: unreadable hard state ({exc})") from exc

    def _snapshot_files(self) -> list[tuple[int, int, Path]]:
        out = []
        for p in self.dir.glob("snapshot-*-*"):
            if p.name.endswith(".tmp"):
                continue
            try:
                _, term, index = p.name.split("-")
                out.append((int(index), int(term), p))
            except ValueError:
                continue
        return sorted(out)

    def _read_latest_snapshot(self) -> Snapshot:
        files = self._snapshot_files()
        for index, _, path in reversed(files):
            try:
                return _snapshot_from_bytes(path.read_bytes(), path.name)
            except RaftStorageError as exc:
                log.warning("skipping damaged Raft snapshot (index %d): %s", index, exc)
        return Snapshot()

    def _read_log(self, snapshot_index: int) -> list[Entry]:
        self._positions.clear()
        entries: list[Entry] = []
        if not self._log_path.exists():
            self._first_index = snapshot_index + 1
            self._last_index = snapshot_index
            return entries
        data = self._log_path.read_bytes()
        pos = 0
        good_end = 0
        while pos + _REC.size <= len(data):
            length, crc = _REC.unpack_from(data, pos)
            start = pos + _REC.size
            end = start + length
            if length < _ENTRY.size or length > RECORD_BYTES_MAX or end > len(data):
                break
            payload = data[start:end]
            if crc32c.crc32c(payload) != crc:
                break
            term, index, kind = _ENTRY.unpack_from(payload)
            entry = Entry(term=term, index=index, kind=EntryKind(kind), data=payload[_ENTRY.size :])
            if index > snapshot_index:
                if entries and index != entries[-1].index + 1:
                    raise RaftStorageError(
                        f"{self._log_path}: entry {index} follows {entries[-1].index}"
                    )
                self._positions[index] = pos
                entries.append(entry)
            pos = good_end = end
        if good_end < len(data):
            log.warning(
                "Raft log: cut a torn tail of %d bytes after index %d",
                len(data) - good_end,
                entries[-1].index if entries else snapshot_index,
            )
            with open(self._log_path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        self._first_index = entries[0].index if entries else snapshot_index + 1
        self._last_index = entries[-1].index if entries else snapshot_index
        return entries

    # -- persist ----------------------------------------------------------------------------

    def persist(
        self, snapshot: Snapshot | None, entries: list[Entry], hard_state: HardState | None
    ) -> None:
        """Make a Ready's state durable, in the core's order: snapshot, entries, hard state."""
        if snapshot is not None:
            self._install_snapshot(snapshot)
        if entries:
            first = entries[0].index
            if first <= self._last_index:
                self._truncate_from(first)
            assert first == self._last_index + 1, (first, self._last_index)
            pos = os.lseek(self._fd, 0, os.SEEK_END)
            chunks = []
            for e in entries:
                rec = _encode_entry(e)
                self._positions[e.index] = pos
                pos += len(rec)
                chunks.append(rec)
            os.write(self._fd, b"".join(chunks))
            self._last_index = entries[-1].index
            os.fsync(self._fd)
        if hard_state is not None:
            _write_atomic(
                self.dir / "hardstate",
                json.dumps(
                    {"term": hard_state.term, "vote": hard_state.vote, "commit": hard_state.commit}
                ).encode(),
            )

    def _truncate_from(self, index: int) -> None:
        pos = self._positions.get(index)
        assert pos is not None, f"no stored entry {index}"
        os.ftruncate(self._fd, pos)
        for i in range(index, self._last_index + 1):
            self._positions.pop(i, None)
        self._last_index = index - 1

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot received from the leader replaces the whole stored log."""
        self._write_snapshot_file(snapshot)
        self._rewrite_log([])
        self._first_index = snapshot.index + 1
        self._last_index = snapshot.index

    def save_snapshot(self, snapshot: Snapshot, first_index: int) -> None:
        """Store a snapshot the application took, and drop stored entries before
        ``first_index`` (the core keeps a trailing window before the snapshot)."""
        keep = [e for e in self._read_all() if e.index >= first_index]
        self._write_snapshot_file(snapshot)
        self._rewrite_log(keep)
        self._first_index = keep[0].index if keep else snapshot.index + 1
        self._last_index = max(self._last_index, keep[-1].index if keep else snapshot.index)

    def _read_all(self) -> list[Entry]:
        """Every intact stored entry (the file was validated at open)."""
        out: list[Entry] = []
        if not self._log_path.exists():
            return out
        data = self._log_path.read_bytes()
        pos = 0
        while pos + _REC.size <= len(data):
            length, _ = _REC.unpack_from(data, pos)
            start = pos + _REC.size
            payload = data[start : start + length]
            term, index, kind = _ENTRY.unpack_from(payload)
            out.append(Entry(term, index, EntryKind(kind), payload[_ENTRY.size :]))
            pos = start + length
        return out

    def _write_snapshot_file(self, snapshot: Snapshot) -> None:
        path = self.dir / f"snapshot-{snapshot.term}-{snapshot.index}"
        _write_atomic(path, _snapshot_to_bytes(snapshot))
        files = self._snapshot_files()
        for _, _, old in files[: max(0, len(files) - self.snapshot_retain)]:
            old.unlink(missing_ok=True)

    def _rewrite_log(self, entries: list[Entry]) -> None:
        tmp = self.dir / "log.tmp"
        chunks = []
        positions = {}
        pos = 0
        for e in entries:
            rec = _encode_entry(e)
            positions[e.index] = pos
            pos += len(rec)
            chunks.append(rec)
        with open(tmp, "wb") as f:
            f.write(b"".join(chunks))
            f.flush()
            os.fsync(f.fileno())
        if self._fd >= 0:
            os.close(self._fd)
        os.replace(tmp, self._log_path)
        _fsync_dir(self.dir)
        self._fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._positions = positions
