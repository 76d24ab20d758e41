"""Errors the Raft core raises to its driver.

They are ordinary exceptions (not tied to gRPC); the server maps them to its own taxonomy.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base class for Raft core errors."""


class NotLeader(RaftError):
    """The operation needs the leader; ``leader_hint`` is the known leader or ``""``.

    Drivers use the hint to forward requests instead of failing them.
    """

    def __init__(self, leader_hint: str) -> None:
        super().__init__(f"not the leader (leader hint: {leader_hint or 'none'})")
        self.leader_hint = leader_hint


class ProposalDropped(RaftError):
    """The leader refused a proposal (leadership transfer running, or too much uncommitted)."""


class ConfChangeInProgress(RaftError):
    """A membership change is still uncommitted; changes happen one at a time."""


class InvalidConfChange(RaftError):
    """The change makes no sense for the current configuration (e.g. remove a non-member)."""


class ReadyOutstanding(RaftError):
    """``ready()`` was called again before ``advance()`` of the previous Ready."""
