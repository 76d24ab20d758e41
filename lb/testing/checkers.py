"""Raft safety and liveness checkers fed by a simulator (or any test driving RaftNodes).

The checker is told what happens (a node's role/term/commit after each input, each applied
entry, each snapshot restore) and records violations as strings instead of raising, so that a
simulation run can report every problem of a seed at once:

- election safety: at most one leader per term;
- leader completeness: an entry committed in term T is in the log of every leader of a term > T;
- log matching: two logs holding an entry with the same index and term agree on every entry up
  to it;
- state-machine safety: every node applies the same entry at each index, in index order, and a
  restored snapshot equals the state other nodes had at that index;
- durable votes: a node never persists two different votes in one term, nor a lower term;
- liveness (checked by the simulator with :meth:`RaftChecker.add_violation`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from lb.raft import Entry, HardState, RaftNode, Role

VIOLATIONS_MAX = 50


def digest_after(prev: bytes, entry: Entry) -> bytes:
    """Hash chain of applied entries: the trivial state machine's identity."""
    h = hashlib.blake2b(prev, digest_size=16)
    h.update(entry.index.to_bytes(8, "big"))
    h.update(entry.term.to_bytes(8, "big"))
    h.update(bytes([int(entry.kind)]))
    h.update(entry.data)
    return h.digest()


@dataclass
class RaftChecker:
    leaders_by_term: dict[int, str] = field(default_factory=dict)
    commit_terms: dict[int, tuple[int, int]] = field(default_factory=dict)
    """index -> (term of the entry, term of the leader that committed it)."""
    applied_entries: dict[int, Entry] = field(default_factory=dict)
    digests: dict[int, bytes] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    _seen: dict[str, tuple[Role, int, int]] = field(default_factory=dict)
    _durable_terms: dict[str, int] = field(default_factory=dict)
    _durable_votes: dict[tuple[str, int], str] = field(default_factory=dict)

    def add_violation(self, text: str) -> None:
        if len(self.violations) < VIOLATIONS_MAX:
            self.violations.append(text)

    # -- per-input observation ------------------------------------------------------

    def observe(self, now: int, node: RaftNode) -> None:
        """Call after every input to ``node`` (step, tick, propose)."""
        key = (node.role, node.term, node.log.committed)
        prev = self._seen.get(node.id)
        if prev == key:
            return
        self._seen[node.id] = key
        role, term, _ = key
        if role is Role.LEADER and (prev is None or prev[0] is not Role.LEADER or prev[1] != term):
            other = self.leaders_by_term.get(term)
            if other is not None and other != node.id:
                self.add_violation(
                    f"t={now}: election safety: {other} and {node.id} lead term {term}"
                )
            self.leaders_by_term[term] = node.id
            self._check_leader_completeness(now, node)

    def on_commit_persisted(
        self, now: int, node: RaftNode, old_commit: int, new_commit: int
    ) -> None:
        """``node`` durably recorded commit index ``new_commit`` (was ``old_commit``).

        Recorded at persist time, not when the leader's in-memory commit moves: a commit that
        dies with its node before reaching the disk was never visible. The commit term is the
        node's current term, an upper bound of the term in which the entry was committed (the
        commit reached this node from a leader of that term), so the check stays sound.
        """
        term = node.term
        for i in range(max(old_commit, 0) + 1, new_commit + 1):
            if i not in self.commit_terms:
                t = node.log.term(i)
                if t is not None:
                    self.commit_terms[i] = (t, term)

    def on_hard_state(self, now: int, node_id: str, hs: HardState) -> None:
        """A hard state reached the disk: terms never go back, one vote per term per node."""
        prev_term = self._durable_terms.get(node_id, 0)
        if hs.term < prev_term:
            self.add_violation(f"t={now}: {node_id} persisted term {hs.term} after {prev_term}")
        self._durable_terms[node_id] = hs.term
        if hs.vote:
            key = (node_id, hs.term)
            voted = self._durable_votes.setdefault(key, hs.vote)
            if voted != hs.vote:
                self.add_violation(
                    f"t={now}: {node_id} voted for {voted} and {hs.vote} in term {hs.term}"
                )

    def forget(self, node_id: str) -> None:
        """The node crashed: its next observation starts fresh."""
        self._seen.pop(node_id, None)

    def _check_leader_completeness(self, now: int, node: RaftNode) -> None:
        log = node.log
        for index, (entry_term, commit_term) in self.commit_terms.items():
            if commit_term >= node.term or index <= log.offset:
                continue
            t = log.term(index)
            if t != entry_term:
                self.add_violation(
                    f"t={now}: leader completeness: {node.id} leads term {node.term} without "
                    f"entry {index} (term {entry_term}) committed in term {commit_term}; "
                    f"it has term {t}"
                )
                return

    def on_apply(
        self, now: int, node_id: str, prev_index: int, prev_digest: bytes, entry: Entry
    ) -> bytes:
        """Record ``node_id`` applying ``entry`` on top of state (prev_index, prev_digest)."""
        if entry.index != prev_index + 1:
            self.add_violation(
                f"t={now}: state machine: {node_id} applied {entry.index} after {prev_index}"
            )
        known = self.applied_entries.get(entry.index)
        if known is None:
            self.applied_entries[entry.index] = entry
        elif known != entry:
            self.add_violation(
                f"t={now}: state machine safety: {node_id} applied {entry} at {entry.index}, "
                f"another node applied {known}"
            )
        d = digest_after(prev_digest, entry)
        known_d = self.digests.get(entry.index)
        if known_d is None:
            self.digests[entry.index] = d
        elif known_d != d and known == entry:
            self.add_violation(
                f"t={now}: state machine safety: {node_id} diverged before {entry.index}"
            )
        return d

    def on_restore(self, now: int, node_id: str, index: int, digest: bytes) -> None:
        known = self.digests.get(index)
        if known is not None and known != digest:
            self.add_violation(
                f"t={now}: state machine safety: {node_id} restored a snapshot at {index} that "
                "differs from the state other nodes had there"
            )

    # -- whole-cluster checks -------------------------------------------------------

    def check_log_matching(self, now: int, nodes: Mapping[str, RaftNode]) -> None:
        ids = sorted(nodes)
        for i, a_id in enumerate(ids):
            for b_id in ids[i + 1 :]:
                self._check_pair(now, a_id, nodes[a_id], b_id, nodes[b_id])

    def _check_pair(self, now: int, a_id: str, a: RaftNode, b_id: str, b: RaftNode) -> None:
        la, lb_ = a.log, b.log
        lo = max(la.first_index(), lb_.first_index())
        hi = min(la.last_index(), lb_.last_index())
        matched = False
        for idx in range(hi, lo - 1, -1):
            ea, eb = la.entry(idx), lb_.entry(idx)
            if matched:
                if ea != eb:
                    self.add_violation(
                        f"t={now}: log matching: {a_id} and {b_id} share a later entry but "
                        f"differ at {idx}: {ea} vs {eb}"
                    )
                    return
            elif ea.term == eb.term:
                matched = True
                if ea != eb:
                    self.add_violation(
                        f"t={now}: log matching: {a_id} and {b_id} have different entries with "
                        f"index {idx} and term {ea.term}"
                    )
                    return
