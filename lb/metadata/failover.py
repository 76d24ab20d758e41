"""Partition leader failure detection on the controller (REPL-3, REPL-4).

Followers that hear nothing from their leader for ``replica.max.leader.timeout`` report it to
the controller (the metadata Raft leader). The tracker counts distinct reporting ISR
followers per partition leader generation; once more than ``(len(ISR) - 1) // 2`` of them
have reported within the last timeout, it picks a new leader and returns the ChangeLeader op
for the controller to propose. Time enters as ``now_ns`` values; nothing here sleeps.

Two elections for the same failure can both produce an op (for example while the first is
still being committed); the op carries the generation it replaces, so apply accepts only the
first one and the second fails with "Leader generation mismatch".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lb._proto import lbinternal as pb
from lb.metadata.errors import NO_ISR_CANDIDATES, failed_precondition
from lb.metadata.model import MetadataState
from lb.metadata.ops import change_leader_op
from lb.metadata.placement import select_leader
from lb.metadata.preconditions import check_leader_generation


@dataclass(frozen=True, slots=True)
class LeaderReport:
    """Follower ``replica`` says ``leader`` (generation ``leader_epoch``) is unresponsive."""

    stream: str
    partition: int
    replica: str
    leader: str
    leader_epoch: int

    @classmethod
    def from_proto(cls, msg: pb.ReportLeaderRequest) -> LeaderReport:
        return cls(msg.stream, msg.partition, msg.replica, msg.leader, msg.leader_epoch)

    def to_proto(self) -> pb.ReportLeaderRequest:
        return pb.ReportLeaderRequest(
            stream=self.stream,
            partition=self.partition,
            replica=self.replica,
            leader=self.leader,
            leader_epoch=self.leader_epoch,
        )


@dataclass(slots=True)
class _Witnesses:
    leader: str
    leader_epoch: int
    reported_ns: dict[str, int] = field(default_factory=dict)  # replica -> last report time


class LeaderFailureTracker:
    """Counts leader-failure reports per partition and decides elections.

    Owned by the controller; ``clear()`` it when metadata leadership is lost (a new controller
    starts counting afresh, as Liftbridge does). Memory is bounded by the number of
    partitions being reported, and each entry by the partition's ISR size; entries older than
    the timeout are dropped by ``expire`` and on every report.
    """

    def __init__(self, leader_timeout_ns: int) -> None:
        assert leader_timeout_ns > 0
        self.leader_timeout_ns = leader_timeout_ns
        self._entries: dict[tuple[str, int], _Witnesses] = {}

    def report(
        self, state: MetadataState, report: LeaderReport, now_ns: int
    ) -> pb.MetadataOp | None:
        """Record ``report``; return a ChangeLeader op to propose when the leader is deemed
        failed, else None.

        Raises ``MetadataError`` FailedPrecondition: "No such partition [...]" for an unknown
        partition, "Leader generation mismatch, ..." for a stale report, "<replica> not a
        replica" for a reporter outside the replica set, and "No ISR candidates" when the
        leader has failed but no other ISR member can take over (no unclean election).
        """
        partition = check_leader_generation(
            state, report.stream, report.partition, report.leader, report.leader_epoch
        )
        if report.replica not in partition.replicas:
            raise failed_precondition(f"{report.replica} not a replica")
        key = (report.stream, report.partition)
        entry = self._entries.get(key)
        if entry is None or (entry.leader, entry.leader_epoch) != (
            partition.leader,
            partition.leader_epoch,
        ):
            entry = _Witnesses(partition.leader, partition.leader_epoch)
            self._entries[key] = entry
        entry.reported_ns[report.replica] = now_ns
        horizon_ns = now_ns - self.leader_timeout_ns
        for replica, at_ns in list(entry.reported_ns.items()):
            if at_ns < horizon_ns:
                del entry.reported_ns[replica]
        witnesses = {r for r in entry.reported_ns if r in partition.isr and r != partition.leader}
        quorum = (len(partition.isr) - 1) // 2
        # An ISR of one has quorum 0: any report "fails" the leader, and the election then
        # finds no candidate (REPL-4).
        if len(witnesses) <= quorum and len(partition.isr) > 1:
            return None
        del self._entries[key]
        candidates = [r for r in partition.isr if r != partition.leader]
        if not candidates:
            raise failed_precondition(NO_ISR_CANDIDATES)
        leader = select_leader(candidates, state.leader_load())
        return change_leader_op(
            report.stream, report.partition, leader, partition.leader, partition.leader_epoch
        )

    def expire(self, now_ns: int) -> None:
        """Drop reports older than the timeout and entries left with none."""
        horizon_ns = now_ns - self.leader_timeout_ns
        for key, entry in list(self._entries.items()):
            for replica, at_ns in list(entry.reported_ns.items()):
                if at_ns < horizon_ns:
                    del entry.reported_ns[replica]
            if not entry.reported_ns:
                del self._entries[key]

    def forget(self, stream: str, partition: int | None = None) -> None:
        """Drop pending reports for a partition (or a whole stream, e.g. after a delete)."""
        for key in [k for k in self._entries if k[0] == stream]:
            if partition is None or key[1] == partition:
                del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def statistics(self) -> dict[str, int]:
        return {
            "partitions_reported": len(self._entries),
            "reports_pending": sum(len(e.reported_ns) for e in self._entries.values()),
        }
