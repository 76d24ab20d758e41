"""Placement (API-CREATE-6/7)."""

from __future__ import annotations

import pytest

from lb.metadata.errors import ErrorCode, MetadataError
from lb.metadata.placement import Placement, place_partitions, resolve_replication_factor


def test_rf_all_members() -> None:
    assert resolve_replication_factor(-1, 3) == 3
    [p] = place_partitions(["a", "b", "c"], 1, -1, {}, {})
    assert p == Placement(0, ("a", "b", "c"), "a")


@pytest.mark.parametrize(
    ("rf", "text"),
    [
        (-2, "Invalid replicationFactor -2"),
        (-5, "Invalid replicationFactor -5"),
        (0, "Invalid replicationFactor 0"),
        (4, "Invalid replicationFactor 4, cluster size 3"),
    ],
)
def test_rf_errors(rf: int, text: str) -> None:
    with pytest.raises(MetadataError) as info:
        place_partitions(["a", "b", "c"], 1, rf, {}, {})
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.message == text


def test_insufficient_replicas_single_node() -> None:
    with pytest.raises(MetadataError, match=r"Invalid replicationFactor 2, cluster size 1"):
        place_partitions(["a"], 1, 2, {}, {})


def test_lowest_partition_load_stable() -> None:
    # Liftbridge TestMetadataGetPartitionReplicas: lowest partition load, stable order.
    loads = {"a": 2, "b": 0, "c": 1, "d": 0}
    [p] = place_partitions(["a", "b", "c", "d"], 1, 2, loads, {})
    assert p.replicas == ("b", "d")
    [p] = place_partitions(["a", "b", "c", "d"], 1, 3, loads, {})
    assert p.replicas == ("b", "d", "c")


def test_leader_lowest_leader_load() -> None:
    # Liftbridge TestMetadataSelectPartitionLeader: least leader load among the replicas.
    [p] = place_partitions(["a", "b", "c"], 1, 3, {}, {"a": 3, "b": 1, "c": 2})
    assert p.leader == "b"
    [p] = place_partitions(["a", "b", "c"], 1, 3, {}, {"a": 1, "b": 1, "c": 1})
    assert p.leader == "a"  # tie: replica order


def test_multi_partition_spreads() -> None:
    ps = place_partitions(["a", "b", "c"], 3, 1, {}, {})
    assert [p.replicas for p in ps] == [("a",), ("b",), ("c",)]
    assert [p.leader for p in ps] == ["a", "b", "c"]
    ps = place_partitions(["a", "b", "c"], 3, 2, {}, {})
    assert [p.replicas for p in ps] == [("a", "b"), ("c", "a"), ("b", "c")]
    assert [p.leader for p in ps] == ["a", "c", "b"]
    for p in ps:
        assert p.leader in p.replicas


def test_single_node_many_partitions() -> None:
    ps = place_partitions(["only"], 3, 1, {}, {})
    assert [p.id for p in ps] == [0, 1, 2]
    assert all(p.replicas == ("only",) and p.leader == "only" for p in ps)
