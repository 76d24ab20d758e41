"""Durable Raft state: round trip, overwrite of a suffix, snapshots, torn tails, retention."""

from __future__ import annotations

from pathlib import Path

from lb.raft.messages import ConfState, Entry, EntryKind, HardState, Snapshot
from lb.server.raft_storage import RaftStorage


def _entries(first: int, last: int, term: int) -> list[Entry]:
    return [Entry(term=term, index=i, data=f"op{i}".encode()) for i in range(first, last + 1)]


def test_round_trip_and_suffix_overwrite(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path / "raft")
    state = s.open()
    assert state.entries == [] and state.hard_state == HardState() and state.snapshot.index == 0
    assert s.is_empty
    s.persist(None, _entries(1, 5, 1), HardState(term=1, vote="a", commit=2))
    # A new leader overwrites entries 4.. with its own term.
    s.persist(None, _entries(4, 6, 2), HardState(term=2, vote="b", commit=4))
    s.close()

    s2 = RaftStorage(tmp_path / "raft")
    state = s2.open()
    assert [(e.index, e.term) for e in state.entries] == [
        (1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)
    ]
    assert state.hard_state == HardState(term=2, vote="b", commit=4)
    assert not s2.is_empty
    s2.close()


def test_torn_tail_is_cut(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path / "raft")
    s.open()
    s.persist(None, _entries(1, 3, 1), HardState(term=1, commit=3))
    s.close()
    log = tmp_path / "raft" / "log"
    data = log.read_bytes()
    log.write_bytes(data[:-3])  # a crash in the middle of the last record
    s2 = RaftStorage(tmp_path / "raft")
    state = s2.open()
    assert [e.index for e in state.entries] == [1, 2]
    # Appending after recovery continues from the cut point.
    s2.persist(None, [Entry(term=1, index=3, data=b"again")], None)
    s2.close()
    state = RaftStorage(tmp_path / "raft").open()
    assert state.entries[-1] == Entry(term=1, index=3, data=b"again")


def test_snapshots_compact_and_install(tmp_path: Path) -> None:
    s = RaftStorage(tmp_path / "raft", snapshot_retain=2)
    s.open()
    s.persist(None, _entries(1, 10, 1), HardState(term=1, commit=10))
    conf = ConfState(voters=("a", "b"), learners=("c",), cluster_id="cid")
    for idx in (4, 6, 8):
        snap = Snapshot(index=idx, term=1, conf_state=conf, data=f"state@{idx}".encode())
        s.save_snapshot(snap, idx + 1)
    assert len(list((tmp_path / "raft").glob("snapshot-*"))) == 2, "retain the newest two"
    s.persist(None, [Entry(term=1, index=11, kind=EntryKind.NOOP)], None)
    s.close()

    state = RaftStorage(tmp_path / "raft").open()
    assert state.snapshot.index == 8 and state.snapshot.data == b"state@8"
    assert state.snapshot.conf_state == conf
    assert [e.index for e in state.entries] == [9, 10, 11]
    assert state.entries[-1].kind == EntryKind.NOOP

    # A snapshot from the leader replaces the whole log.
    s3 = RaftStorage(tmp_path / "raft")
    s3.open()
    s3.persist(Snapshot(index=20, term=3, conf_state=conf, data=b"x"), [], HardState(term=3))
    s3.persist(None, [Entry(term=3, index=21)], None)
    s3.close()
    state = RaftStorage(tmp_path / "raft").open()
    assert state.snapshot.index == 20 and [e.index for e in state.entries] == [21]
