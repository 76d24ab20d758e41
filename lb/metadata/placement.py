"""Partition placement, decided by the controller before it proposes a create (API-CREATE-6/7).

Placement is a pure function of the Raft members and the current loads, so the op can carry
its result and every replica applies the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lb.metadata.errors import invalid_argument

REPLICATION_FACTOR_ALL = -1
"""Replication factor meaning "every current Raft member"."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one partition lives. The initial ISR is all replicas."""

    id: int
    replicas: tuple[str, ...]
    leader: str


def resolve_replication_factor(replication_factor: int, cluster_size: int) -> int:
    """Check and resolve a replication factor (after the 0 -> 1 default) with Liftbridge's
    texts: -1 means the cluster size; other values must be in 1..cluster_size."""
    rf = cluster_size if replication_factor == REPLICATION_FACTOR_ALL else replication_factor
    if rf <= 0:
        raise invalid_argument(f"Invalid replicationFactor {rf}")
    if rf > cluster_size:
        raise invalid_argument(f"Invalid replicationFactor {rf}, cluster size {cluster_size}")
    return rf


def select_leader(candidates: Sequence[str], leader_load: Mapping[str, int]) -> str:
    """The candidate with the lowest leader load; ties keep ``candidates`` order."""
    assert candidates
    return min(candidates, key=lambda s: leader_load.get(s, 0))


def place_partitions(
    members: Sequence[str],
    partitions: int,
    replication_factor: int,
    partition_load: Mapping[str, int],
    leader_load: Mapping[str, int],
) -> list[Placement]:
    """Place ``partitions`` new partitions on ``members`` (the Raft voters and learners).

    Each partition's replicas are the RF members with the lowest partition load (stable: ties
    keep ``members`` order) and its leader is the replica with the lowest leader load.
    Unlike Liftbridge, which computes every partition of one create from the same loads (so
    all of a stream's RF=1 partitions land on one server), the loads include the partitions
    already placed by this call, which spreads a multi-partition stream over the cluster.
    Raises ``MetadataError`` (INVALID_ARGUMENT) for a bad replication factor.
    """
    assert len(set(members)) == len(members), members
    assert partitions >= 1
    rf = resolve_replication_factor(replication_factor, len(members))
    p_load = {m: partition_load.get(m, 0) for m in members}
    l_load = {m: leader_load.get(m, 0) for m in members}
    order = {m: i for i, m in enumerate(members)}
    result: list[Placement] = []
    for pid in range(partitions):
        ranked = sorted(members, key=lambda m: (p_load[m], order[m]))
        replicas = tuple(ranked[:rf])
        leader = select_leader(replicas, l_load)
        for r in replicas:
            p_load[r] += 1
        l_load[leader] += 1
        result.append(Placement(pid, replicas, leader))
    return result
