"""Cluster formation helpers (Liftbridge CLU-2, CLU-3, CLU-4), pure functions.

- ``raft.bootstrap.seed``: :meth:`lb.raft.core.RaftNode.bootstrap_seed`.
- ``raft.bootstrap.peers``: :meth:`lb.raft.core.RaftNode.bootstrap_peers` (uses
  :func:`peers_conf_state`).
- Neither: :meth:`lb.raft.core.RaftNode.join`; the leader's driver answers the NATS join
  request with ``propose_conf_change(join_change(...))``.
- Two seeds on one namespace: every driver periodically broadcasts
  ``node.cluster_probe()``; stepping a message from another cluster yields a
  :class:`~lb.raft.ready.ClusterConflict` (:func:`detect_cluster_conflict` is the same test).
"""

from __future__ import annotations

import hashlib

from .messages import ConfChange, ConfChangeKind, ConfState, Message
from .ready import ClusterConflict


def peers_cluster_id(peers: list[str]) -> str:
    """Cluster id for a fixed peer list: the same on every peer, different for other lists."""
    joined = "\n".join(sorted(set(peers))).encode()
    return "peers-" + hashlib.sha256(joined).hexdigest()[:32]


def peers_conf_state(peers: list[str], quorum_size_max: int, cluster_id: str) -> ConfState:
    """Initial configuration for a peer list: sorted; the first ``quorum_size_max`` peers vote
    (0 = all), the rest are learners (CLU-4)."""
    ordered = sorted(set(peers))
    if not ordered:
        raise ValueError("empty peer list")
    cut = quorum_size_max if quorum_size_max > 0 else len(ordered)
    return ConfState(tuple(ordered[:cut]), tuple(ordered[cut:]), cluster_id)


def join_change(conf_state: ConfState, node_id: str, quorum_size_max: int) -> ConfChange | None:
    """The change that admits ``node_id``: voter while voters < ``quorum_size_max`` (0 = no cap),
    else learner. None if the node is already a member in the right role."""
    if node_id in conf_state.voters:
        return None
    room = quorum_size_max <= 0 or len(conf_state.voters) < quorum_size_max
    if room:
        return ConfChange(ConfChangeKind.ADD_VOTER, node_id)
    if node_id in conf_state.learners:
        return None
    return ConfChange(ConfChangeKind.ADD_LEARNER, node_id)


def detect_cluster_conflict(local_cluster_id: str, m: Message) -> ClusterConflict | None:
    """A conflict if ``m`` comes from a node of another cluster (both ids known)."""
    if m.cluster_id and local_cluster_id and m.cluster_id != local_cluster_id:
        return ClusterConflict(m.from_, m.cluster_id, local_cluster_id)
    return None
