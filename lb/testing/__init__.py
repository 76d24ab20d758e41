"""lb's public test kit: seeded in-memory network, cluster simulators and invariant checkers.

Import the submodules directly (``lb.testing.simnet``, ``lb.testing.raft_sim``,
``lb.testing.checkers``, ``lb.testing.raft_net``, ...); this package re-exports nothing so that
importing one simulator never drags in the others.
"""
