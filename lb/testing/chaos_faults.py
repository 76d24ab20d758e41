"""The fault schedule of a chaos run, drawn from a seed (pure: no clock, no I/O).

Why pure: the same seed must give the same schedule so that a failing run can be replayed, and
the schedule can be tested without a cluster. Targets that depend on the cluster's state (which
server leads a partition right now) are resolved by the runner when the fault lands, from the
``pick`` number drawn here, so the choice among the candidates is seeded too.

Faults run one after another: wait ``gap_s`` (traffic keeps flowing, so every fault lands while
replication is in flight), apply, hold ``hold_s``, heal (restart on the same data dir, SIGCONT),
wait until the cluster has a metadata leader again, next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    KILL_PARTITION_LEADER = "kill_partition_leader"  # SIGKILL the leader of one partition
    KILL_FOLLOWER = "kill_follower"  # SIGKILL one follower of one partition
    KILL_METADATA_LEADER = "kill_metadata_leader"  # SIGKILL the Raft leader (from the logs)
    KILL_TWO = "kill_two"  # SIGKILL two servers at the same moment
    PAUSE = "pause"  # SIGSTOP one server past the lag and leader timeouts, then SIGCONT
    KILL_NATS = "kill_nats"  # SIGKILL one nats-server of a NATS cluster, restart it later
    RESTART_ALL = "restart_all"  # SIGKILL every server, then start them all again
    # SIGSTOP a partition's followers for less than the lag timeout (the leader keeps
    # appending an uncommitted tail), SIGKILL the leader, SIGCONT the followers: a follower
    # takes over and the old leader must cut its tail when it comes back (KIP-101).
    FREEZE_FOLLOWERS_KILL_LEADER = "freeze_followers_kill_leader"


ALL_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)
SERVER_KINDS: tuple[FaultKind, ...] = tuple(k for k in FaultKind if k is not FaultKind.KILL_NATS)


@dataclass(frozen=True)
class FaultSpec:
    """One planned fault. ``pick`` chooses among the candidates found at run time."""

    index: int
    kind: FaultKind
    gap_s: float  # traffic-only time before the fault
    hold_s: float  # how long the fault lasts before it is healed
    pick: int


@dataclass(frozen=True)
class FaultTiming:
    """The server timeouts the schedule must outlast (seconds)."""

    lag_s: float = 2.0  # clustering.replica.max.lag.time
    leader_timeout_s: float = 2.0  # clustering.replica.max.leader.timeout
    recovery_estimate_s: float = 3.0  # budget per fault for restart and re-election


def plan_faults(
    seed: int,
    duration_s: float,
    kinds: tuple[FaultKind, ...] = SERVER_KINDS,
    timing: FaultTiming | None = None,
    count_max: int = 1000,
) -> list[FaultSpec]:
    """Faults for about ``duration_s`` seconds of chaos.

    Kinds are dealt from shuffled decks, so every kind in ``kinds`` appears once before any
    appears twice. Pauses last past both the lag and the leader timeouts so that they really
    cause an ISR shrink and a leader report. At least one fault is always planned.
    """
    if not kinds:
        raise ValueError("no fault kinds")
    timing = timing or FaultTiming()
    rng = random.Random(seed)
    out: list[FaultSpec] = []
    deck: list[FaultKind] = []
    spent_s = 0.0
    while len(out) < count_max:
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        kind = deck.pop()
        gap_s = round(rng.uniform(1.0, 3.0), 2)
        if kind is FaultKind.PAUSE:
            floor = max(timing.lag_s, timing.leader_timeout_s) + 1.0
            hold_s = round(rng.uniform(floor, floor + 3.0), 2)
        elif kind is FaultKind.RESTART_ALL:
            hold_s = round(rng.uniform(0.2, 1.5), 2)
        else:
            hold_s = round(rng.uniform(1.0, 4.0), 2)
        cost = gap_s + hold_s + timing.recovery_estimate_s
        if out and spent_s + cost > duration_s:
            break
        out.append(FaultSpec(len(out), kind, gap_s, hold_s, rng.randrange(1 << 30)))
        spent_s += cost
    return out


def choose(candidates: list[str], pick: int, count: int = 1) -> list[str]:
    """``count`` distinct candidates chosen by ``pick`` (deterministic for sorted input)."""
    pool = sorted(candidates)
    if len(pool) < count:
        raise ValueError(f"need {count} of {pool}")
    rng = random.Random(pick)
    return rng.sample(pool, count)
