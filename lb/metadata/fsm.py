"""The metadata state machine: committed Raft entries in, state changes and effects out.

Contract (what the Raft driver relies on):

* ``apply(entry, index)`` is called once per committed metadata entry, in log order, with
  strictly increasing Raft indexes (gaps are fine: other entry types are not metadata). It
  never raises for a bad op: a rejected op leaves the state unchanged and returns its
  ``MetadataError`` in ``ApplyResult.error``. Because every replica applies the same entries
  to the same state, every replica reaches the same verdict, so a rejection is deterministic
  and the state cannot diverge. The node that proposed the entry relays the error to the
  client. An ``AssertionError`` means a broken invariant (a bug), never bad input.
* The state changes only through ``apply`` and ``restore``. It reads no clock and no
  randomness: time arrives inside ops (the creation timestamp) and the Raft index is the only
  other input (it becomes the partition epochs, REPL-9 and API-CREATE-11).
* ``check(entry)`` is a dry run against the current state, for fast rejection before
  proposing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import betterproto

from lb._proto import lbinternal as pb
from lb.metadata import effects as fx
from lb.metadata.convert import config_from_proto
from lb.metadata.errors import (
    PARTITION_DOES_NOT_EXIST,
    STREAM_DOES_NOT_EXIST,
    STREAM_EXISTS,
    MetadataError,
    already_exists,
    failed_precondition,
    internal,
    invalid_argument,
    not_found,
)
from lb.metadata.model import MetadataState, Partition, ServerInfo, Stream
from lb.metadata.ops import decode_op
from lb.metadata.preconditions import (
    check_leader_generation,
    require_stream,
    resolve_partition_ids,
)
from lb.metadata.snapshot import decode_snapshot, encode_snapshot


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of one entry: ``error`` is None on success; ``effects`` is empty on error."""

    error: MetadataError | None
    effects: tuple[fx.Effect, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Outcome:
    """Changes an op wants to make: stream records (None = delete) and server records."""

    streams: dict[str, Stream | None]
    servers: dict[str, ServerInfo]
    effects: tuple[fx.Effect, ...]


_Handler = Callable[[MetadataState, object, int], _Outcome]


class MetadataFSM:
    """Holds a ``MetadataState`` and applies metadata ops to it (see the module docstring)."""

    def __init__(self, state: MetadataState | None = None) -> None:
        self.state = state if state is not None else MetadataState()

    # ----- the driver's interface -----

    def apply(self, entry: bytes | pb.MetadataOp, index: int) -> ApplyResult:
        """Apply the committed entry at Raft ``index``; see the module docstring."""
        assert index > self.state.applied_index, (index, self.state.applied_index)
        try:
            outcome = _plan(self.state, entry, index)
        except MetadataError as err:
            self.state.applied_index = index
            return ApplyResult(err)
        self._commit(outcome)
        self.state.applied_index = index
        return ApplyResult(None, outcome.effects)

    def check(self, entry: bytes | pb.MetadataOp) -> MetadataError | None:
        """What ``apply`` would reject this entry with right now (state untouched)."""
        try:
            _plan(self.state, entry, self.state.applied_index + 1)
        except MetadataError as err:
            return err
        return None

    def snapshot(self) -> bytes:
        """The whole state as ``MetadataSnapshot`` bytes (deterministic for equal states)."""
        return encode_snapshot(self.state)

    def restore(self, data: bytes) -> tuple[fx.Effect, ...]:
        """Replace the state with a snapshot. Raises ``MetadataError`` (INTERNAL) and keeps
        the old state if ``data`` is not a valid snapshot."""
        self.state = decode_snapshot(data)
        streams = tuple(self.state.streams[name] for name in sorted(self.state.streams))
        return (fx.StateRestored(streams),)

    # ----- internals -----

    def _commit(self, outcome: _Outcome) -> None:
        for name, stream in outcome.streams.items():
            if stream is None:
                del self.state.streams[name]
            else:
                stream.check()
                self.state.streams[name] = stream
        for sid, server in outcome.servers.items():
            self.state.servers[sid] = server


def _plan(state: MetadataState, entry: bytes | pb.MetadataOp, index: int) -> _Outcome:
    op = decode_op(entry) if isinstance(entry, bytes | bytearray | memoryview) else entry
    kind, body = betterproto.which_one_of(op, "op")
    handler = _HANDLERS.get(kind)
    if handler is None or body is None:
        raise internal(f"unknown metadata op {kind or '(none)'}")
    return handler(state, body, index)


def _replace_partitions(stream: Stream, changed: dict[int, Partition], **kw: object) -> Stream:
    parts = tuple(changed.get(p.id, p) for p in stream.partitions)
    return dataclasses.replace(stream, partitions=parts, **kw)


def _set_epoch(p: Partition, index: int, **changes: object) -> Partition:
    """A copy of ``p`` with ``changes`` and its epoch moved to ``index`` (REPL-9)."""
    assert index > p.epoch, (p, index)  # epochs only grow
    return dataclasses.replace(p, epoch=index, **changes)


def _create_stream(state: MetadataState, op: pb.CreateStreamOp, index: int) -> _Outcome:
    if op.name in state.streams:
        raise already_exists(STREAM_EXISTS)
    if not op.name or not op.partitions:
        raise internal(f"invalid create op for stream {op.name!r}: no name or no partitions")
    partitions: list[Partition] = []
    for i, placement in enumerate(op.partitions):
        replicas = tuple(placement.replicas)
        if (
            placement.id != i
            or not replicas
            or len(set(replicas)) != len(replicas)
            or placement.leader not in replicas
        ):
            raise internal(f"invalid create op for stream {op.name}: bad placement {placement}")
        partitions.append(
            Partition(
                stream=op.name,
                id=i,
                replicas=replicas,
                leader=placement.leader,
                isr=replicas,
                epoch=index,
                leader_epoch=index,
            )
        )
    stream = Stream(
        name=op.name,
        subject=op.subject,
        group=op.group,
        creation_timestamp_ns=op.creation_timestamp_ns,
        replication_factor=op.replication_factor,
        config=config_from_proto(op.config),
        partitions=tuple(partitions),
    )
    return _Outcome({op.name: stream}, {}, (fx.StreamCreated(stream),))


def _delete_stream(state: MetadataState, op: pb.DeleteStreamOp, index: int) -> _Outcome:
    stream = require_stream(state, op.name)
    return _Outcome({op.name: None}, {}, (fx.StreamDeleted(stream),))


def _pause_stream(state: MetadataState, op: pb.PauseStreamOp, index: int) -> _Outcome:
    stream, ids = resolve_partition_ids(state, op.name, op.partitions)
    changed = {
        pid: dataclasses.replace(stream.partitions[pid], paused=True)
        for pid in ids
        if not stream.partitions[pid].paused
    }
    new = _replace_partitions(stream, changed, resume_all=op.resume_all)
    effect = fx.PartitionsPaused(op.name, ids, op.resume_all, tuple(changed.values()))
    return _Outcome({op.name: new}, {}, (effect,))


def _resume_stream(state: MetadataState, op: pb.ResumeStreamOp, index: int) -> _Outcome:
    stream = require_stream(state, op.name, STREAM_DOES_NOT_EXIST)
    if op.partitions:
        ids = tuple(dict.fromkeys(op.partitions))
        if any(stream.partition(pid) is None for pid in ids):
            raise not_found(PARTITION_DOES_NOT_EXIST)
    else:
        ids = tuple(p.id for p in stream.partitions if p.paused)
    changed = {
        pid: dataclasses.replace(stream.partitions[pid], paused=False)
        for pid in ids
        if stream.partitions[pid].paused
    }
    # A resume ends the pause that set resume_all (Liftbridge resets it after resuming).
    new = _replace_partitions(stream, changed, resume_all=False)
    effect = fx.PartitionsResumed(op.name, ids, tuple(changed.values()))
    return _Outcome({op.name: new}, {}, (effect,))


def _set_stream_readonly(state: MetadataState, op: pb.SetStreamReadonlyOp, index: int) -> _Outcome:
    stream, ids = resolve_partition_ids(state, op.name, op.partitions)
    changed = {
        pid: dataclasses.replace(stream.partitions[pid], readonly=op.readonly) for pid in ids
    }
    new = _replace_partitions(stream, changed)
    effect = fx.ReadonlyChanged(op.name, tuple(changed.values()), op.readonly)
    return _Outcome({op.name: new}, {}, (effect,))


def _isr_target(state: MetadataState, op: pb.ShrinkIsrOp | pb.ExpandIsrOp) -> Partition:
    partition = check_leader_generation(state, op.stream, op.partition, op.leader, op.leader_epoch)
    if op.replica not in partition.replicas:
        raise failed_precondition(f"{op.replica} not a replica")
    if op.partition_epoch and op.partition_epoch != partition.epoch:
        raise failed_precondition(
            f"stale ISR change: based on partition epoch {op.partition_epoch}, "
            f"current epoch {partition.epoch}"
        )
    return partition


def _shrink_isr(state: MetadataState, op: pb.ShrinkIsrOp, index: int) -> _Outcome:
    partition = _isr_target(state, op)
    if op.replica not in partition.isr:
        return _Outcome({}, {}, ())  # already out: nothing to do
    if op.replica == partition.leader:
        raise failed_precondition(f"cannot remove leader {op.replica} from ISR")
    isr = tuple(r for r in partition.isr if r != op.replica)
    new = _set_epoch(partition, index, isr=isr)
    stream = _replace_partitions(state.streams[op.stream], {new.id: new})
    return _Outcome({op.stream: stream}, {}, (fx.IsrChanged(new, removed=op.replica),))


def _expand_isr(state: MetadataState, op: pb.ExpandIsrOp, index: int) -> _Outcome:
    partition = _isr_target(state, op)
    if op.replica in partition.isr:
        return _Outcome({}, {}, ())  # already in: nothing to do
    new = _set_epoch(partition, index, isr=(*partition.isr, op.replica))
    stream = _replace_partitions(state.streams[op.stream], {new.id: new})
    return _Outcome({op.stream: stream}, {}, (fx.IsrChanged(new, added=op.replica),))


def _change_leader(state: MetadataState, op: pb.ChangeLeaderOp, index: int) -> _Outcome:
    partition = check_leader_generation(
        state, op.stream, op.partition, op.previous_leader, op.previous_leader_epoch
    )
    if op.leader not in partition.isr:
        raise failed_precondition(f"{op.leader} not in ISR")
    assert index > partition.leader_epoch, (partition, index)
    isr = partition.isr
    if op.drop_previous_from_isr and op.previous_leader != op.leader:
        isr = tuple(r for r in isr if r != op.previous_leader)
    new = _set_epoch(partition, index, leader=op.leader, leader_epoch=index, isr=isr)
    stream = _replace_partitions(state.streams[op.stream], {new.id: new})
    effect = fx.LeaderChanged(new, previous_leader=partition.leader)
    return _Outcome({op.stream: stream}, {}, (effect,))


def _confirm_leader(state: MetadataState, op: pb.ConfirmLeaderOp, index: int) -> _Outcome:
    """Changes nothing; fails unless ``op.leader`` still leads in ``op.leader_epoch``."""
    check_leader_generation(state, op.stream, op.partition, op.leader, op.leader_epoch)
    return _Outcome({}, {}, ())


PORT_MAX = 65_535


def _register_server(state: MetadataState, op: pb.RegisterServerOp, index: int) -> _Outcome:
    if not op.id:
        raise invalid_argument("Server id cannot be empty")
    if not op.host:
        raise invalid_argument("Server host cannot be empty")
    if not 0 < op.port <= PORT_MAX:
        raise invalid_argument(f"Invalid server port {op.port}")
    server = ServerInfo(op.id, op.host, op.port)
    if state.servers.get(op.id) == server:
        return _Outcome({}, {}, ())
    return _Outcome({}, {op.id: server}, (fx.ServerRegistered(server),))


_HANDLERS: dict[str, _Handler] = {
    "create_stream": _create_stream,  # type: ignore[dict-item]
    "delete_stream": _delete_stream,  # type: ignore[dict-item]
    "pause_stream": _pause_stream,  # type: ignore[dict-item]
    "resume_stream": _resume_stream,  # type: ignore[dict-item]
    "set_stream_readonly": _set_stream_readonly,  # type: ignore[dict-item]
    "shrink_isr": _shrink_isr,  # type: ignore[dict-item]
    "expand_isr": _expand_isr,  # type: ignore[dict-item]
    "change_leader": _change_leader,  # type: ignore[dict-item]
    "register_server": _register_server,  # type: ignore[dict-item]
    "confirm_leader": _confirm_leader,  # type: ignore[dict-item]
}
