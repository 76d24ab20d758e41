"""The metadata controller across real server processes on a real nats-server (issue 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.exceptions import GRPCError

from lb._proto.proto import CreateStreamRequest, FetchMetadataRequest
from lb.testing.cluster import Cluster, nats_cluster, wait_until

pytestmark = pytest.mark.slow


def _stream_names(cluster: Cluster, name: str) -> set[str]:
    try:
        md = cluster.call(name, "fetch_metadata", FetchMetadataRequest(), timeout_s=5)
    except (GRPCError, OSError):
        return set()
    return {s.name for s in md.stream_metadata}


def _brokers(cluster: Cluster, name: str) -> set[str]:
    md = cluster.call(name, "fetch_metadata", FetchMetadataRequest(), timeout_s=5)
    return {b.id for b in md.brokers}


def _create(cluster: Cluster, via: str, stream: str) -> None:
    cluster.call(via, "create_stream", CreateStreamRequest(subject=stream, name=stream))


def test_seed_and_joiners_form_a_cluster_and_survive_leader_loss(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        cluster.add("a", args=["--raft-bootstrap-seed"]).wait_serving()
        cluster.add("b").wait_serving()
        cluster.add("c").wait_serving()
        leader = cluster.wait_leader()
        assert leader == "a"
        wait_until(lambda: _brokers(cluster, "c") == {"a", "b", "c"}, what="3 brokers")

        # Any server accepts a metadata request; followers forward it to the leader.
        _create(cluster, "b", "s1")
        for name in "abc":
            wait_until(lambda n=name: "s1" in _stream_names(cluster, n), what=f"s1 on {name}")
        with pytest.raises(GRPCError) as dup:
            _create(cluster, "c", "s1")
        assert dup.value.message == "stream already exists"

        # Killing the leader leads to a new one, and metadata ops keep working.
        cluster.kill(leader)
        survivors = [n for n in "abc" if n != leader]
        new_leader = cluster.wait_leader(survivors)
        assert new_leader in survivors
        _create(cluster, survivors[0], "s2")
        for name in survivors:
            wait_until(lambda n=name: "s2" in _stream_names(cluster, n), what=f"s2 on {name}")

        # The old leader comes back on its data dir and catches up.
        cluster.restart(leader).wait_serving()
        wait_until(lambda: {"s1", "s2"} <= _stream_names(cluster, leader), what="catch-up")


def test_peers_bootstrap_restart_from_snapshot_and_non_voter(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        peers = ["--raft-bootstrap-peers", "a,b,c"]
        config = {"clustering.raft.snapshot.threshold": 4, "clustering.raft.max.quorum.size": 3}
        for name in "abc":
            cluster.add(name, args=peers, config=config)
        for name in "abc":
            cluster.servers[name].wait_serving()
        leader = cluster.wait_leader()
        follower = next(n for n in "abc" if n != leader)

        # Stop a follower, make enough changes for snapshots, bring it back: it catches up,
        # from a snapshot the leader sends or its own log.
        cluster.servers[follower].stop()
        for i in range(12):
            _create(cluster, leader, f"snap{i}")
        assert "took a metadata snapshot" in cluster.servers[leader].output()
        cluster.restart(follower).wait_serving()
        expected = {f"snap{i}" for i in range(12)}
        wait_until(lambda: expected <= _stream_names(cluster, follower), what="restart catch-up")

        # A fourth server beyond raft.max.quorum.size joins as a non-voter (learner).
        cluster.add("d", config=config).wait_serving()
        wait_until(lambda: "d" in _brokers(cluster, leader), what="d registered")
        leader_now = cluster.wait_leader(["a", "b", "c"])
        assert "adding server d to the metadata cluster (ADD_LEARNER)" in (
            cluster.servers[leader_now].output()
        )
        wait_until(lambda: expected <= _stream_names(cluster, "d"), what="learner has state")


def test_two_seeds_on_one_namespace_is_fatal(tmp_path: Path) -> None:
    with nats_cluster(tmp_path) as cluster:
        a = cluster.add("a", args=["--raft-bootstrap-seed"])
        b = cluster.add("b", args=["--raft-bootstrap-seed"])
        a.wait_serving()
        b.wait_serving()
        # Each elects itself; the probes make at least one of them exit with a clear error.
        codes = wait_until(
            lambda: [p.process.poll() for p in (a, b) if p.process.poll() is not None],
            timeout_s=30,
            what="a seed to stop",
        )
        assert codes[0] == 1
        out = a.output() + b.output()
        assert "belongs to another metadata cluster" in out
        assert "raft.bootstrap.seed" in out


def test_no_metadata_leader_is_a_clear_internal_error(tmp_path: Path) -> None:
    """A server with no cluster to join answers metadata calls with Liftbridge's text."""
    with nats_cluster(tmp_path) as cluster:
        lonely = cluster.add("lonely")
        lonely.wait_serving(timeout_s=30)  # SERVING after a bounded wait for a leader
        with pytest.raises(GRPCError) as err:
            # With a deadline the server keeps looking for a leader until it (API-CREATE-9).
            cluster.call("lonely", "create_stream",
                         CreateStreamRequest(subject="nope", name="nope"), timeout_s=2)
        assert err.value.status.name == "INTERNAL"
        assert err.value.message == "no known metadata leader"
