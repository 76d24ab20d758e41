"""lb: Liftbridge, rebuilt in Python on Trio.

A server that gives NATS durability: an append-only, replicated, partitioned log of the
messages on NATS subjects, with Liftbridge's gRPC API.
"""

__version__ = "0.1.0"
