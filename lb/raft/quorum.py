"""Majority arithmetic over a set of voters, kept apart so that it can be tested alone."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping


def quorum_size(voter_count: int) -> int:
    """Smallest majority of ``voter_count`` voters (0 voters -> 0: nothing can be decided)."""
    return voter_count // 2 + 1 if voter_count > 0 else 0


def committed_index(voters: Iterable[str], match: Callable[[str], int]) -> int:
    """Largest index that a majority of ``voters`` has (0 if there are no voters)."""
    indexes = sorted((match(v) for v in voters), reverse=True)
    if not indexes:
        return 0
    return indexes[quorum_size(len(indexes)) - 1]


class VoteResult:
    """Outcome of a (pre-)vote count."""

    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def vote_result(voters: Iterable[str], votes: Mapping[str, bool]) -> str:
    """Tally ``votes`` (node -> granted) among ``voters``: won, lost, or still pending."""
    voter_list = list(voters)
    q = quorum_size(len(voter_list))
    granted = sum(1 for v in voter_list if votes.get(v) is True)
    rejected = sum(1 for v in voter_list if votes.get(v) is False)
    if q and granted >= q:
        return VoteResult.WON
    if len(voter_list) - rejected < q or not q:
        return VoteResult.LOST
    return VoteResult.PENDING
