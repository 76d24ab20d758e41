"""The metadata state machine: every op, its effects, epochs and every error text."""

from __future__ import annotations

import pytest

from lb.metadata import effects as fx
from lb.metadata import ops
from lb.metadata.errors import ErrorCode, MetadataError
from lb.metadata.fsm import ApplyResult, MetadataFSM
from lb.metadata.model import StreamConfig
from lb.metadata.placement import Placement

MEMBERS = ["a", "b", "c"]


class Driver:
    """Feeds ops with increasing Raft indexes, like the Raft driver would."""

    def __init__(self) -> None:
        self.fsm = MetadataFSM()
        self.index = 0

    def apply(self, op: ops.MetadataOp, *, gap: int = 1) -> ApplyResult:
        self.index += gap
        return self.fsm.apply(ops.encode_op(op), self.index)

    def ok(self, op: ops.MetadataOp) -> tuple[fx.Effect, ...]:
        result = self.apply(op)
        assert result.error is None, result.error
        self.fsm.state.check()
        return result.effects

    def err(self, op: ops.MetadataOp) -> MetadataError:
        before = ops.encode_op(op)  # noqa: F841 (keep the op bytes alive for the check below)
        snapshot = self.fsm.snapshot()
        checked = self.fsm.check(op)
        result = self.apply(op)
        assert result.error is not None
        assert result.effects == ()
        assert checked == result.error  # the dry run predicts the verdict
        # A rejected op changes nothing but the applied index.
        after = MetadataFSM()
        after.restore(self.fsm.snapshot())
        expected = MetadataFSM()
        expected.restore(snapshot)
        assert after.state.streams == expected.state.streams
        assert after.state.servers == expected.state.servers
        return result.error

    def create(self, name: str = "foo", partitions: int = 1, rf: int = 1, **kw: object) -> None:
        op = ops.plan_create_stream(
            self.fsm.state,
            MEMBERS,
            name=name,
            subject=kw.pop("subject", name),  # type: ignore[arg-type]
            now_ns=123,
            partitions=partitions,
            replication_factor=rf,
            **kw,  # type: ignore[arg-type]
        )
        self.ok(op)


def _expect(err: MetadataError, code: ErrorCode, text: str) -> None:
    assert (err.code, err.message) == (code, text)


# ----- create -----


def test_create_stream_state_and_effect() -> None:
    d = Driver()
    d.index = 41
    cfg = StreamConfig(retention_max_bytes=0, compact_enabled=False, min_isr=2)
    op = ops.plan_create_stream(
        d.fsm.state,
        MEMBERS,
        name="foo",
        subject="foo.bar",
        now_ns=1_700_000_000_000_000_000,
        partitions=2,
        replication_factor=-1,
        group="g",
        config=cfg,
    )
    [effect] = d.ok(op)
    stream = d.fsm.state.streams["foo"]
    assert effect == fx.StreamCreated(stream)
    assert stream.subject == "foo.bar"
    assert stream.group == "g"
    assert stream.creation_timestamp_ns == 1_700_000_000_000_000_000
    assert stream.replication_factor == -1
    assert stream.config == cfg
    assert stream.config.retention_max_messages is None
    assert stream.partition_subject(0) == "foo.bar"
    assert stream.partition_subject(1) == "foo.bar.1"
    for p in stream.partitions:
        # API-CREATE-7 and API-CREATE-11: ISR = replicas, epochs = Raft index of the create.
        assert set(p.replicas) == set(MEMBERS)
        assert p.isr == p.replicas
        assert p.leader in p.replicas
        assert p.epoch == p.leader_epoch == 42
        assert not p.paused and not p.readonly
    assert stream.partitions[0].leader != stream.partitions[1].leader


def test_create_existing_stream() -> None:
    d = Driver()
    d.create("foo")
    with pytest.raises(MetadataError) as info:
        ops.plan_create_stream(d.fsm.state, MEMBERS, name="foo", subject="x", now_ns=0)
    _expect(info.value, ErrorCode.ALREADY_EXISTS, "stream already exists")


def test_create_race_second_apply_fails() -> None:
    d = Driver()
    a = ops.plan_create_stream(d.fsm.state, MEMBERS, name="foo", subject="a", now_ns=0)
    b = ops.plan_create_stream(d.fsm.state, MEMBERS, name="foo", subject="b", now_ns=0)
    d.ok(a)
    _expect(d.err(b), ErrorCode.ALREADY_EXISTS, "stream already exists")
    assert d.fsm.state.streams["foo"].subject == "a"


def test_create_same_subject_different_names() -> None:
    d = Driver()
    d.create("s1", subject="foo")
    d.create("s2", subject="foo")
    assert set(d.fsm.state.streams) == {"s1", "s2"}


@pytest.mark.parametrize(
    "placements",
    [
        [],
        [Placement(1, ("a",), "a")],
        [Placement(0, (), "a")],
        [Placement(0, ("a", "a"), "a")],
        [Placement(0, ("a",), "b")],
    ],
)
def test_create_bad_placement_is_internal(placements: list[Placement]) -> None:
    d = Driver()
    op = ops.create_stream_op(
        name="foo", subject="foo", placements=placements, creation_timestamp_ns=0
    )
    err = d.err(op)
    assert err.code is ErrorCode.INTERNAL
    assert err.message.startswith("invalid create op for stream")


def test_plan_create_validation_order() -> None:
    d = Driver()
    d.create("foo")
    state = d.fsm.state
    cases = [
        (dict(name="", subject=""), "Name cannot be empty"),
        (dict(name="x", subject="a b"), "Subject is invalid"),
        (dict(name="__activity", subject="a"), "Stream is reserved"),
        (dict(name="x", subject="a", partitions=-3), "Invalid partitions -3: must be at least 1"),
        (
            dict(name="x", subject="a", replication_factor=4),
            "Invalid replicationFactor 4, cluster size 3",
        ),
        (dict(name="x", subject="a", replication_factor=-7), "Invalid replicationFactor -7"),
        # replication factor is checked before existence
        (
            dict(name="foo", subject="a", replication_factor=9),
            "Invalid replicationFactor 9, cluster size 3",
        ),
        (dict(name="foo", subject="a"), "stream already exists"),
    ]
    for kwargs, text in cases:
        with pytest.raises(MetadataError) as info:
            ops.plan_create_stream(state, MEMBERS, now_ns=0, **kwargs)  # type: ignore[arg-type]
        assert info.value.message == text, kwargs


# ----- delete -----


def test_delete_stream() -> None:
    d = Driver()
    d.create("foo", partitions=2)
    stream = d.fsm.state.streams["foo"]
    assert d.ok(ops.delete_stream_op("foo")) == (fx.StreamDeleted(stream),)
    assert "foo" not in d.fsm.state.streams
    _expect(d.err(ops.delete_stream_op("foo")), ErrorCode.NOT_FOUND, "stream does not exist")
    # API-DELETE-4: the name can be created again straight away.
    d.create("foo")
    assert d.fsm.state.streams["foo"].partitions[0].epoch == d.index


# ----- pause / resume -----


def test_pause_all_and_idempotent() -> None:
    d = Driver()
    d.create("foo", partitions=3, rf=2)
    [effect] = d.ok(ops.pause_stream_op("foo"))
    assert isinstance(effect, fx.PartitionsPaused)
    assert effect.partitions == (0, 1, 2)
    assert [p.id for p in effect.newly_paused] == [0, 1, 2]
    assert all(p.paused for p in d.fsm.state.streams["foo"].partitions)
    assert d.fsm.state.partition_load() == {}
    assert d.fsm.state.leader_load() == {}
    [effect] = d.ok(ops.pause_stream_op("foo", resume_all=True))
    assert effect == fx.PartitionsPaused("foo", (0, 1, 2), True, ())
    assert d.fsm.state.streams["foo"].resume_all


def test_pause_some() -> None:
    d = Driver()
    d.create("foo", partitions=3)
    [effect] = d.ok(ops.pause_stream_op("foo", [2, 0, 2], resume_all=False))
    assert isinstance(effect, fx.PartitionsPaused)
    assert effect.partitions == (2, 0)
    assert [p.paused for p in d.fsm.state.streams["foo"].partitions] == [True, False, True]
    # epochs are not touched by pause
    assert all(p.epoch == 1 for p in d.fsm.state.streams["foo"].partitions)


def test_pause_errors() -> None:
    d = Driver()
    d.create("foo", partitions=2)
    _expect(d.err(ops.pause_stream_op("nope")), ErrorCode.NOT_FOUND, "stream not found")
    _expect(d.err(ops.pause_stream_op("nope", [0])), ErrorCode.NOT_FOUND, "stream does not exist")
    _expect(
        d.err(ops.pause_stream_op("foo", [0, 5])), ErrorCode.NOT_FOUND, "partition does not exist"
    )
    _expect(
        d.err(ops.pause_stream_op("foo", [-1])), ErrorCode.NOT_FOUND, "partition does not exist"
    )


def test_resume() -> None:
    d = Driver()
    d.create("foo", partitions=3)
    d.ok(ops.pause_stream_op("foo", [0, 1], resume_all=True))
    [effect] = d.ok(ops.resume_stream_op("foo", [1, 2]))
    assert isinstance(effect, fx.PartitionsResumed)
    assert effect.partitions == (1, 2)
    assert [p.id for p in effect.resumed] == [1]  # 2 was not paused
    stream = d.fsm.state.streams["foo"]
    assert [p.paused for p in stream.partitions] == [True, False, False]
    assert not stream.resume_all  # a resume ends the resume_all pause
    # Empty list: every paused partition.
    [effect] = d.ok(ops.resume_stream_op("foo"))
    assert isinstance(effect, fx.PartitionsResumed)
    assert effect.partitions == (0,)
    assert not any(p.paused for p in d.fsm.state.streams["foo"].partitions)
    # Nothing paused: succeeds, does nothing.
    assert d.ok(ops.resume_stream_op("foo")) == (fx.PartitionsResumed("foo", (), ()),)


def test_resume_errors() -> None:
    d = Driver()
    d.create("foo")
    _expect(d.err(ops.resume_stream_op("nope")), ErrorCode.NOT_FOUND, "stream does not exist")
    _expect(d.err(ops.resume_stream_op("nope", [0])), ErrorCode.NOT_FOUND, "stream does not exist")
    _expect(
        d.err(ops.resume_stream_op("foo", [3])), ErrorCode.NOT_FOUND, "partition does not exist"
    )


def test_reserved_streams_can_be_paused() -> None:
    # PAUSE-11: only create/delete check reserved names (the server creates __cursors itself).
    d = Driver()
    placements = [Placement(0, ("a",), "a")]
    d.ok(
        ops.create_stream_op(
            name="__cursors", subject="ns.cursors", placements=placements, creation_timestamp_ns=0
        )
    )
    d.ok(ops.pause_stream_op("__cursors"))
    d.ok(ops.set_stream_readonly_op("__cursors", readonly=True))


# ----- readonly -----


def test_set_readonly() -> None:
    d = Driver()
    d.create("foo", partitions=2)
    [effect] = d.ok(ops.set_stream_readonly_op("foo", [0], readonly=True))
    assert isinstance(effect, fx.ReadonlyChanged)
    assert effect.readonly and [p.id for p in effect.partitions] == [0]
    assert [p.readonly for p in d.fsm.state.streams["foo"].partitions] == [True, False]
    # idempotent, still reported (timestamps move on every call)
    [effect] = d.ok(ops.set_stream_readonly_op("foo", [0], readonly=True))
    assert isinstance(effect, fx.ReadonlyChanged)
    assert [p.id for p in effect.partitions] == [0]
    # all partitions, clear
    [effect] = d.ok(ops.set_stream_readonly_op("foo", readonly=False))
    assert isinstance(effect, fx.ReadonlyChanged)
    assert [p.id for p in effect.partitions] == [0, 1] and not effect.readonly
    assert not any(p.readonly for p in d.fsm.state.streams["foo"].partitions)


def test_readonly_errors() -> None:
    d = Driver()
    d.create("foo")
    _expect(d.err(ops.set_stream_readonly_op("nope")), ErrorCode.NOT_FOUND, "stream not found")
    _expect(
        d.err(ops.set_stream_readonly_op("nope", [0])), ErrorCode.NOT_FOUND, "stream does not exist"
    )
    _expect(
        d.err(ops.set_stream_readonly_op("foo", [1])),
        ErrorCode.NOT_FOUND,
        "partition does not exist",
    )


def test_paused_and_readonly_together() -> None:
    d = Driver()
    d.create("foo")
    d.ok(ops.set_stream_readonly_op("foo", readonly=True))
    d.ok(ops.pause_stream_op("foo"))
    [effect] = d.ok(ops.resume_stream_op("foo"))
    assert isinstance(effect, fx.PartitionsResumed)
    # RO-7 fixed: resuming keeps readonly, and the resumed record says so.
    assert effect.resumed[0].readonly
    assert d.fsm.state.streams["foo"].partitions[0].readonly


# ----- ISR and leader -----


def test_shrink_and_expand_isr_epochs() -> None:
    d = Driver()
    d.create("foo", rf=3)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    leader, follower = p.leader, p.replicas[1]
    [effect] = d.ok(ops.shrink_isr_op("foo", 0, follower, leader, p.leader_epoch))
    assert isinstance(effect, fx.IsrChanged)
    assert effect.removed == follower and effect.added is None
    p2 = d.fsm.state.partition("foo", 0)
    assert p2 is not None and effect.partition == p2
    assert follower not in p2.isr
    assert p2.epoch == d.index and p2.leader_epoch == p.leader_epoch  # REPL-9
    # shrinking again: nothing to do, epoch unchanged
    assert d.ok(ops.shrink_isr_op("foo", 0, follower, leader, p.leader_epoch)) == ()
    assert d.fsm.state.partition("foo", 0) == p2
    [effect] = d.ok(ops.expand_isr_op("foo", 0, follower, leader, p.leader_epoch))
    assert isinstance(effect, fx.IsrChanged)
    assert effect.added == follower and effect.removed is None
    p3 = d.fsm.state.partition("foo", 0)
    assert p3 is not None and set(p3.isr) == set(p3.replicas)
    assert p3.epoch == d.index > p2.epoch
    assert d.ok(ops.expand_isr_op("foo", 0, follower, leader, p.leader_epoch)) == ()


def test_isr_errors() -> None:
    d = Driver()
    d.create("foo", rf=2)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    leader, other = p.leader, next(r for r in p.replicas if r != p.leader)
    outsider = next(m for m in MEMBERS if m not in p.replicas)
    for build in (ops.shrink_isr_op, ops.expand_isr_op):
        _expect(
            d.err(build("nope", 0, other, leader, p.leader_epoch)),
            ErrorCode.FAILED_PRECONDITION,
            "No such partition [stream=nope, partition=0]",
        )
        _expect(
            d.err(build("foo", 1, other, leader, p.leader_epoch)),
            ErrorCode.FAILED_PRECONDITION,
            "No such partition [stream=foo, partition=1]",
        )
        _expect(
            d.err(build("foo", 0, other, leader, p.leader_epoch + 1)),
            ErrorCode.FAILED_PRECONDITION,
            f"Leader generation mismatch, current leader: {leader} epoch: {p.leader_epoch}, "
            f"got leader: {leader} epoch: {p.leader_epoch + 1}",
        )
        _expect(
            d.err(build("foo", 0, other, other, p.leader_epoch)),
            ErrorCode.FAILED_PRECONDITION,
            f"Leader generation mismatch, current leader: {leader} epoch: {p.leader_epoch}, "
            f"got leader: {other} epoch: {p.leader_epoch}",
        )
        _expect(
            d.err(build("foo", 0, outsider, leader, p.leader_epoch)),
            ErrorCode.FAILED_PRECONDITION,
            f"{outsider} not a replica",
        )
    _expect(
        d.err(ops.shrink_isr_op("foo", 0, leader, leader, p.leader_epoch)),
        ErrorCode.FAILED_PRECONDITION,
        f"cannot remove leader {leader} from ISR",
    )


def test_change_leader() -> None:
    d = Driver()
    d.create("foo", rf=3)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    new = p.replicas[2]
    [effect] = d.ok(ops.change_leader_op("foo", 0, new, p.leader, p.leader_epoch))
    assert isinstance(effect, fx.LeaderChanged)
    assert effect.previous_leader == p.leader
    p2 = d.fsm.state.partition("foo", 0)
    assert p2 is not None and effect.partition == p2
    assert p2.leader == new
    assert p2.leader_epoch == p2.epoch == d.index  # REPL-9
    # The same election again is stale now (two racing elections change the leader once).
    _expect(
        d.err(ops.change_leader_op("foo", 0, p.replicas[1], p.leader, p.leader_epoch)),
        ErrorCode.FAILED_PRECONDITION,
        f"Leader generation mismatch, current leader: {new} epoch: {p2.leader_epoch}, "
        f"got leader: {p.leader} epoch: {p.leader_epoch}",
    )


def test_change_leader_errors() -> None:
    d = Driver()
    d.create("foo", rf=2)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    follower = next(r for r in p.replicas if r != p.leader)
    _expect(
        d.err(ops.change_leader_op("foo", 3, follower, p.leader, p.leader_epoch)),
        ErrorCode.FAILED_PRECONDITION,
        "No such partition [stream=foo, partition=3]",
    )
    d.ok(ops.shrink_isr_op("foo", 0, follower, p.leader, p.leader_epoch))
    _expect(
        d.err(ops.change_leader_op("foo", 0, follower, p.leader, p.leader_epoch)),
        ErrorCode.FAILED_PRECONDITION,
        f"{follower} not in ISR",
    )
    outsider = next(m for m in MEMBERS if m not in p.replicas)
    _expect(
        d.err(ops.change_leader_op("foo", 0, outsider, p.leader, p.leader_epoch)),
        ErrorCode.FAILED_PRECONDITION,
        f"{outsider} not in ISR",
    )


def test_confirm_leader_changes_nothing_and_fails_once_leadership_moved() -> None:
    d = Driver()
    d.create("foo", rf=3)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    streams, servers = dict(d.fsm.state.streams), dict(d.fsm.state.servers)
    assert d.ok(ops.confirm_leader_op("foo", 0, p.leader, p.leader_epoch)) == ()
    # Only the applied index moved: no partition epoch, no leader epoch.
    assert (d.fsm.state.streams, d.fsm.state.servers) == (streams, servers)
    new = p.replicas[1]
    d.ok(ops.change_leader_op("foo", 0, new, p.leader, p.leader_epoch))
    p2 = d.fsm.state.partition("foo", 0)
    assert p2 is not None
    _expect(
        d.err(ops.confirm_leader_op("foo", 0, p.leader, p.leader_epoch)),
        ErrorCode.FAILED_PRECONDITION,
        f"Leader generation mismatch, current leader: {new} epoch: {p2.leader_epoch}, "
        f"got leader: {p.leader} epoch: {p.leader_epoch}",
    )
    _expect(
        d.err(ops.confirm_leader_op("bar", 0, p.leader, p.leader_epoch)),
        ErrorCode.FAILED_PRECONDITION,
        "No such partition [stream=bar, partition=0]",
    )


def test_leader_change_on_paused_partition_and_loads() -> None:
    d = Driver()
    d.create("foo", rf=2)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    follower = next(r for r in p.replicas if r != p.leader)
    assert d.fsm.state.leader_load() == {p.leader: 1}
    d.ok(ops.change_leader_op("foo", 0, follower, p.leader, p.leader_epoch))
    assert d.fsm.state.leader_load() == {follower: 1}
    d.ok(ops.pause_stream_op("foo"))
    p2 = d.fsm.state.partition("foo", 0)
    assert p2 is not None
    d.ok(ops.change_leader_op("foo", 0, p.leader, p2.leader, p2.leader_epoch))
    assert d.fsm.state.leader_load() == {}


# ----- servers -----


def test_register_server() -> None:
    d = Driver()
    [effect] = d.ok(ops.register_server_op("a", "localhost", 9292))
    assert isinstance(effect, fx.ServerRegistered)
    assert effect.server == d.fsm.state.servers["a"]
    assert d.ok(ops.register_server_op("a", "localhost", 9292)) == ()  # unchanged
    [effect] = d.ok(ops.register_server_op("a", "10.0.0.1", 5050))
    assert isinstance(effect, fx.ServerRegistered)
    assert (effect.server.host, effect.server.port) == ("10.0.0.1", 5050)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("", "h", 1), "Server id cannot be empty"),
        (("a", "", 1), "Server host cannot be empty"),
        (("a", "h", 0), "Invalid server port 0"),
        (("a", "h", 65536), "Invalid server port 65536"),
        (("a", "h", -1), "Invalid server port -1"),
    ],
)
def test_register_server_errors(args: tuple[str, str, int], text: str) -> None:
    d = Driver()
    _expect(d.err(ops.register_server_op(*args)), ErrorCode.INVALID_ARGUMENT, text)


# ----- entries and indexes -----


def test_garbage_and_empty_entries() -> None:
    d = Driver()
    r = d.fsm.apply(b"\x0a", 1)  # truncated
    assert r.error is not None and r.error.code is ErrorCode.INTERNAL
    assert r.error.message.startswith("undecodable metadata op")
    r = d.fsm.apply(b"\x0f", 2)  # field 1 with a bad wire type: decodes as an op without body
    assert r.error == MetadataError(ErrorCode.INTERNAL, "unknown metadata op create_stream")
    r = d.fsm.apply(b"", 3)
    assert r.error == MetadataError(ErrorCode.INTERNAL, "unknown metadata op (none)")
    # unknown future op numbers (reserved range) decode as "no op set"
    r = d.fsm.apply(bytes([0xA2, 0x01, 0x00]), 4)  # field 20, length-delimited, empty
    assert r.error == MetadataError(ErrorCode.INTERNAL, "unknown metadata op (none)")
    assert d.fsm.state.applied_index == 4


def test_apply_accepts_op_objects_and_index_gaps() -> None:
    d = Driver()
    r = d.fsm.apply(ops.register_server_op("a", "h", 1), 10)
    assert r.ok and d.fsm.state.applied_index == 10
    r = d.fsm.apply(ops.register_server_op("b", "h", 1), 15)
    assert r.ok and d.fsm.state.applied_index == 15


def test_index_must_grow() -> None:
    d = Driver()
    d.fsm.apply(ops.register_server_op("a", "h", 1), 5)
    with pytest.raises(AssertionError):
        d.fsm.apply(ops.register_server_op("b", "h", 1), 5)
    with pytest.raises(AssertionError):
        d.fsm.apply(ops.register_server_op("b", "h", 1), 4)


def test_records_are_immutable() -> None:
    d = Driver()
    d.create("foo")
    p = d.fsm.state.partition("foo", 0)
    with pytest.raises(AttributeError):
        p.leader = "x"  # type: ignore[misc, union-attr]


def test_error_codes_map_to_grpc() -> None:
    assert ErrorCode.INVALID_ARGUMENT.grpc_code == 3
    assert ErrorCode.NOT_FOUND.grpc_code == 5
    assert ErrorCode.ALREADY_EXISTS.grpc_code == 6
    assert ErrorCode.FAILED_PRECONDITION.grpc_code == 9
    assert ErrorCode.INTERNAL.grpc_code == 13
    assert ErrorCode.from_grpc_code(9) is ErrorCode.FAILED_PRECONDITION
    assert ErrorCode.from_grpc_code(14) is ErrorCode.UNKNOWN



def test_isr_change_based_on_a_stale_partition_epoch_is_rejected() -> None:
    """A late duplicate ExpandIsr must not undo a newer shrink (a conditional update)."""
    d = Driver()
    d.create("foo", rf=3)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    follower = p.replicas[1]
    d.ok(ops.shrink_isr_op("foo", 0, follower, p.leader, p.leader_epoch, p.epoch))
    # A late duplicate based on the ISR before the shrink:
    err = d.err(ops.expand_isr_op("foo", 0, follower, p.leader, p.leader_epoch, p.epoch))
    assert err.code is ErrorCode.FAILED_PRECONDITION and "stale ISR change" in err.message
    current = d.fsm.state.partition("foo", 0)
    assert current is not None and follower not in current.isr
    d.ok(ops.expand_isr_op("foo", 0, follower, p.leader, p.leader_epoch, current.epoch))


def test_change_leader_can_drop_a_failed_leader_from_the_isr() -> None:
    d = Driver()
    d.create("foo", rf=3)
    p = d.fsm.state.partition("foo", 0)
    assert p is not None
    new_leader = next(r for r in p.isr if r != p.leader)
    op = ops.change_leader_op("foo", 0, new_leader, p.leader, p.leader_epoch)
    op.change_leader.drop_previous_from_isr = True
    d.ok(op)
    q = d.fsm.state.partition("foo", 0)
    assert q is not None and q.leader == new_leader and p.leader not in q.isr
    assert q.leader_epoch == q.epoch == d.index
