"""Partition replication across real server processes (issue 6): ISR, HW, failover, KIP-101."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from lb._proto.proto import (
    AckPolicy,
    ApiStub,
    CreateStreamRequest,
    FetchMetadataRequest,
    Message,
    NullableInt32,
    PublishRequest,
    StartPosition,
    StopPosition,
    SubscribeRequest,
)
from lb.storage import CommitLog
from lb.testing.cluster import Cluster, call, nats_cluster, wait_until

pytestmark = pytest.mark.slow

FAST = {
    "clustering.replica.max.lag.time": "2s",
    "clustering.replica.max.leader.timeout": "2s",
    "clustering.replica.max.idle.wait": "200ms",
    "clustering.replica.fetch.timeout": "500ms",
}


def _cluster3(cluster: Cluster, config: dict[str, object] | None = None) -> None:
    cfg = {**FAST, **(config or {})}
    cluster.add("a", args=["--raft-bootstrap-seed"], config=cfg).wait_serving()
    cluster.add("b", config=cfg).wait_serving()
    cluster.add("c", config=cfg).wait_serving()
    cluster.wait_leader()
    wait_until(
        lambda: (
            len(call(cluster.servers["a"].port, "fetch_metadata", FetchMetadataRequest()).brokers)
            == 3
        ),
        what="3 brokers",
    )


def _partition(cluster: Cluster, via: str, stream: str, pid: int = 0):  # type: ignore[no-untyped-def]
    md = cluster.call(via, "fetch_metadata", FetchMetadataRequest(streams=[stream]))
    return md.stream_metadata[0].partitions[pid]


async def _publish_all(
    port: int, stream: str, values: list[bytes], policy: AckPolicy, timeout_s: float = 10
) -> list[int]:
    from grpclib.client import Channel

    channel = Channel("127.0.0.1", port)
    try:
        stub = ApiStub(channel)
        offsets = []
        for v in values:
            r = await stub.publish(
                PublishRequest(stream=stream, value=v, ack_policy=policy), timeout=timeout_s
            )
            offsets.append(r.ack.offset)
        return offsets
    finally:
        channel.close()


def publish(
    cluster: Cluster,
    via: str,
    stream: str,
    values: list[bytes],
    policy: AckPolicy = AckPolicy.ALL,
    timeout_s: float = 10,
) -> list[int]:
    port = cluster.servers[via].port
    return asyncio.run(_publish_all(port, stream, values, policy, timeout_s))


async def _read_all(port: int, stream: str, isr_replica: bool) -> list[tuple[int, bytes]]:
    from grpclib.client import Channel

    channel = Channel("127.0.0.1", port)
    out: list[tuple[int, bytes]] = []
    try:
        req = SubscribeRequest(
            stream=stream,
            start_position=StartPosition.EARLIEST,
            stop_position=StopPosition.STOP_LATEST,
            read_isr_replica=isr_replica,
        )
        try:
            async for m in ApiStub(channel).subscribe(req, timeout=10):
                if m.value or m.offset:
                    out.append((m.offset, m.value))
        except GRPCError as err:
            if err.status is not Status.RESOURCE_EXHAUSTED:
                raise
        return out
    finally:
        channel.close()


def read_all(cluster: Cluster, via: str, stream: str) -> list[tuple[int, bytes]]:
    return asyncio.run(_read_all(cluster.servers[via].port, stream, True))


def stored(cluster: Cluster, name: str, stream: str, pid: int = 0) -> list[tuple[int, bytes]]:
    """Records in a stopped server's log, read straight from its files."""
    lg = CommitLog.open(cluster.servers[name].data_dir / "streams" / stream / str(pid))
    try:
        return [(r.offset, r.body) for r in lg.read_records(0, 1 << 30)]
    finally:
        lg.close()


def test_rf3_all_acks_replicate_identically_and_followers_serve_reads(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        _cluster3(cluster)
        cluster.call(
            "b", "create_stream", CreateStreamRequest(subject="r3", name="r3", replication_factor=3)
        )
        p = _partition(cluster, "a", "r3")
        assert sorted(p.replicas) == ["a", "b", "c"] and sorted(p.isr) == ["a", "b", "c"]
        values = [f"m{i}".encode() for i in range(50)]
        offsets = publish(cluster, p.leader, "r3", values)
        assert offsets == list(range(50))
        for name in "abc":  # every replica serves committed data with readISRReplica
            wait_until(lambda n=name: len(read_all(cluster, n, "r3")) == 50, what=f"HW on {name}")
            assert [v for _, v in read_all(cluster, name, "r3")] == values
        for name in "abc":
            cluster.servers[name].stop()
        logs = {name: stored(cluster, name, "r3") for name in "abc"}
        assert logs["a"] == logs["b"] == logs["c"] and len(logs["a"]) == 50


def test_follower_loss_shrinks_isr_and_rejoin_expands_it(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        _cluster3(cluster)
        cluster.call(
            "a", "create_stream", CreateStreamRequest(subject="fl", name="fl", replication_factor=3)
        )
        p = _partition(cluster, "a", "fl")
        follower = next(n for n in "abc" if n != p.leader)
        publish(cluster, p.leader, "fl", [b"before"])
        cluster.kill(follower)
        wait_until(
            lambda: follower not in _partition(cluster, p.leader, "fl").isr,
            timeout_s=20,
            what="ISR shrink",
        )
        publish(cluster, p.leader, "fl", [f"during{i}".encode() for i in range(20)])
        cluster.restart(follower).wait_serving()
        wait_until(
            lambda: follower in _partition(cluster, p.leader, "fl").isr,
            timeout_s=20,
            what="ISR expand",
        )
        wait_until(lambda: len(read_all(cluster, follower, "fl")) == 21, what="caught up")


def test_leader_failover_keeps_all_acked_and_truncates_old_tail(tmp_path: Path) -> None:
    # Followers stay in the ISR while they are paused for a moment; the dead old leader leaves
    # it after the lag time, which is what lets the new leader commit again (ACK-6).
    config = {"clustering.replica.max.lag.time": "6s"}
    with nats_cluster(tmp_path) as cluster:
        _cluster3(cluster, config)
        cluster.call(
            "a", "create_stream", CreateStreamRequest(subject="fo", name="fo", replication_factor=3)
        )
        p = _partition(cluster, "a", "fo")
        old = p.leader
        followers = [n for n in "abc" if n != old]
        acked = publish(cluster, old, "fo", [f"c{i}".encode() for i in range(20)])
        wait_until(
            lambda: all(len(read_all(cluster, f, "fo")) == 20 for f in followers),
            what="followers have the committed data",
        )

        # Freeze the followers, give the leader an uncommitted tail (LEADER acks), kill it.
        for f in followers:
            cluster.servers[f].signal(signal.SIGSTOP)
        tail = publish(cluster, old, "fo", [b"tail1", b"tail2"], AckPolicy.LEADER)
        assert tail == [20, 21]
        cluster.kill(old)
        for f in followers:
            cluster.servers[f].signal(signal.SIGCONT)

        new = wait_until(
            lambda: (lambda q: q.leader if q.leader != old else "")(
                _partition(cluster, followers[0], "fo")
            ),
            timeout_s=30,
            what="a new partition leader",
        )
        assert new in followers
        assert [o for o, _ in read_all(cluster, new, "fo")] == acked
        more = publish(cluster, new, "fo", [b"new1"], timeout_s=30)
        assert more == [20]

        # The old leader rejoins as a follower and cuts its uncommitted tail (KIP-101).
        cluster.restart(old).wait_serving()
        wait_until(
            lambda: [v for _, v in read_all(cluster, old, "fo")][-1:] == [b"new1"],
            timeout_s=20,
            what="old leader reconciled",
        )
        for name in "abc":
            cluster.servers[name].stop()
        logs = {name: stored(cluster, name, "fo") for name in "abc"}
        assert logs["a"] == logs["b"] == logs["c"]
        assert len(logs[old]) == 21 and b"tail1" not in b"".join(b for _, b in logs[old])


def test_min_isr_blocks_commits(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        _cluster3(cluster)
        cluster.call(
            "a",
            "create_stream",
            CreateStreamRequest(
                subject="mi", name="mi", replication_factor=2, min_isr=NullableInt32(2)
            ),
        )
        p = _partition(cluster, "a", "mi")
        publish(cluster, p.leader, "mi", [b"ok"])
        follower = next(n for n in p.replicas if n != p.leader)
        cluster.kill(follower)
        wait_until(
            lambda: list(_partition(cluster, p.leader, "mi").isr) == [p.leader],
            timeout_s=20,
            what="ISR shrink to the leader",
        )
        with pytest.raises(GRPCError) as err:
            asyncio.run(_publish_timeout(cluster.servers[p.leader].port))
        assert err.value.status is Status.DEADLINE_EXCEEDED
        # LEADER acks still arrive below min ISR (REPL-5).
        assert publish(cluster, p.leader, "mi", [b"leader"], AckPolicy.LEADER) == [2]


async def _publish_timeout(port: int) -> None:
    from grpclib.client import Channel

    channel = Channel("127.0.0.1", port)
    try:
        await ApiStub(channel).publish(
            PublishRequest(stream="mi", value=b"blocked", ack_policy=AckPolicy.ALL), timeout=2
        )
    finally:
        channel.close()


def test_graceful_shutdown_moves_leaderships_first(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        _cluster3(cluster)
        meta_leader = cluster.wait_leader()
        cluster.call(
            "a", "create_stream", CreateStreamRequest(subject="gs", name="gs", replication_factor=3)
        )
        p = _partition(cluster, "a", "gs")
        publish(cluster, p.leader, "gs", [b"one"])
        leaving = p.leader
        others = [n for n in "abc" if n != leaving]
        cluster.servers[leaving].signal(signal.SIGTERM)
        assert cluster.servers[leaving].wait(10) == 0
        out = cluster.servers[leaving].output()
        assert "moving 1 partition leaderships before shutdown" in out
        new = wait_until(
            lambda: (lambda q: q.leader if q.leader != leaving else "")(
                _partition(cluster, others[0], "gs")
            ),
            timeout_s=10,
            what="the partition leader to move",
        )
        assert new in others
        if meta_leader == leaving:
            assert "transferring the metadata leadership" in out
        # The data is all there on the new leader, which accepts writes at once.
        assert publish(cluster, new, "gs", [b"two"], timeout_s=20) == [1]


def test_subscriber_on_a_deposed_leader_gets_a_clear_error(tmp_path: Path) -> None:
    """A leader cut off for longer than the leader timeout is replaced; when it comes back, its
    subscribers end with FailedPrecondition so that clients re-resolve (not SUB-14's quirk)."""
    with nats_cluster(tmp_path) as cluster:
        _cluster3(cluster, {"clustering.replica.max.lag.time": "20s"})
        cluster.call(
            "a", "create_stream", CreateStreamRequest(subject="dl", name="dl", replication_factor=3)
        )
        p = _partition(cluster, "a", "dl")
        old = p.leader
        publish(cluster, old, "dl", [b"x"])
        port = cluster.servers[old].port

        async def watch() -> GRPCError:
            from grpclib.client import Channel

            channel = Channel("127.0.0.1", port)
            try:
                req = SubscribeRequest(stream="dl", start_position=StartPosition.EARLIEST)
                async with ApiStub(channel).channel.request(
                    "/proto.API/Subscribe",
                    Cardinality.UNARY_STREAM,
                    SubscribeRequest,
                    Message,
                    timeout=60,
                ) as call:
                    await call.send_message(req, end=True)
                    await call.recv_message()  # the handshake
                    await call.recv_message()  # offset 0
                    started.set()
                    while await call.recv_message() is not None:
                        pass
                    # Leaving the block reads the trailers and raises the status.
            except GRPCError as err:
                return err
            finally:
                channel.close()
            raise AssertionError("the subscription ended without an error")

        import threading

        started = threading.Event()
        result: list[GRPCError] = []
        t = threading.Thread(target=lambda: result.append(asyncio.run(watch())))
        t.start()
        assert started.wait(10)
        cluster.servers[old].signal(signal.SIGSTOP)
        others = [n for n in "abc" if n != old]
        wait_until(
            lambda: _partition(cluster, others[0], "dl").leader not in ("", old),
            timeout_s=30,
            what="a new leader while the old one is stopped",
        )
        cluster.servers[old].signal(signal.SIGCONT)
        t.join(30)
        assert result, "the subscription on the deposed leader did not end"
        assert result[0].status is Status.FAILED_PRECONDITION
        assert "leader" in (result[0].message or "")


async def _publish_during_and_collect(
    nats_url: str, subject: str, count: int, resumed: Any
) -> tuple[dict[str, list[int]], list[str]]:
    """Publish ``count`` LEADER-ack envelopes on NATS, wait for one ack each, then call
    ``resumed()`` (which wakes the stalled leader and waits until it follows) while still
    collecting acks: every ack any server sent, by correlation id."""
    import nats

    from lb.envelope import decode_ack, encode_publish

    nc = await nats.connect(servers=[nats_url])
    acks: dict[str, list[int]] = {}
    got_all = asyncio.Event()

    async def on_ack(msg: Any) -> None:
        ack = decode_ack(msg.data)
        assert ack is not None and not ack.ack_error, ack
        acks.setdefault(ack.correlation_id, []).append(ack.offset)
        if len(acks) == count:
            got_all.set()

    try:
        await nc.subscribe("stall.acks", cb=on_ack)
        await nc.flush()
        ids = [f"m{i}" for i in range(count)]
        for cid in ids:
            data = encode_publish(
                value=cid.encode(), ack_inbox="stall.acks", correlation_id=cid, ack_policy=0
            )
            await nc.publish(subject, data)
        await asyncio.wait_for(got_all.wait(), 20)  # the new leader acked each one
        await asyncio.to_thread(resumed)
        await nc.flush()
        return acks, ids
    finally:
        await nc.close()


def test_a_leader_deposed_while_stalled_does_not_ack_what_it_will_lose(tmp_path: Path) -> None:
    """A frozen leader is replaced; NATS queues the publishes meanwhile for it as for the new
    leader. On waking it must not ack them (they sit at offsets the new leader's log fills
    with other data): it holds the acks until the controller confirms its leadership, learns
    it was deposed, and drops them. Before lb.server.stall it acked all of them at once: LEADER
    acks that the old leader's truncation then lost."""
    with nats_cluster(tmp_path) as cluster:
        _cluster3(cluster)
        cluster.call(
            "a", "create_stream", CreateStreamRequest(subject="st", name="st", replication_factor=3)
        )
        old = _partition(cluster, "a", "st").leader
        others = [n for n in "abc" if n != old]
        publish(cluster, old, "st", [b"first"])
        count = 20
        cluster.servers[old].signal(signal.SIGSTOP)
        try:
            new = wait_until(
                lambda: (lambda q: q.leader if q.leader not in ("", old) else "")(
                    _partition(cluster, others[0], "st")
                ),
                timeout_s=30,
                what="a new leader while the old one is frozen",
            )

            def resume_and_wait_following() -> None:
                cluster.servers[old].signal(signal.SIGCONT)
                wait_until(
                    lambda: _partition(cluster, old, "st").leader == new,
                    timeout_s=30,
                    what="the old leader learns the new one",
                )
                wait_until(
                    lambda: len(read_all(cluster, old, "st")) == count + 1,
                    timeout_s=30,
                    what="the old leader follows the new one",
                )

            acks, ids = asyncio.run(
                _publish_during_and_collect(
                    cluster.nats.url, "st", count, resume_and_wait_following
                )
            )
        finally:
            cluster.servers[old].signal(signal.SIGCONT)  # never leave it frozen on a failure
        committed = dict(read_all(cluster, new, "st"))
        for cid in ids:
            assert len(acks[cid]) == 1, (cid, acks[cid])  # only the new leader acked
            assert committed[acks[cid][0]] == cid.encode()
        # It did stall (and may learn of its successor before or after asking the controller).
        assert "did not run for" in cluster.servers[old].output()
