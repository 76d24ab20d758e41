"""Metadata snapshots: the whole state as ``lbinternal.MetadataSnapshot`` bytes.

Everything replicated is kept, paused and readonly flags and ``resume_all`` included
(Liftbridge lost readonly enforcement and resume_all across snapshots, RO-7). Records are
written in sorted order so equal states give equal bytes, which makes "did the replicas
diverge?" a byte comparison.
"""

from __future__ import annotations

from lb._proto import lbinternal as pb
from lb.metadata.convert import (
    group_from_proto,
    group_to_proto,
    server_from_proto,
    server_to_proto,
    stream_from_proto,
    stream_to_proto,
)
from lb.metadata.errors import internal
from lb.metadata.model import MetadataState

SNAPSHOT_VERSION = 1


def encode_snapshot(state: MetadataState) -> bytes:
    msg = pb.MetadataSnapshot(
        version=SNAPSHOT_VERSION,
        applied_index=state.applied_index,
        streams=[stream_to_proto(state.streams[n]) for n in sorted(state.streams)],
        servers=[server_to_proto(state.servers[s]) for s in sorted(state.servers)],
        groups=[group_to_proto(state.groups[g]) for g in sorted(state.groups)],
    )
    return bytes(msg)


def decode_snapshot(data: bytes) -> MetadataState:
    """Parse and check a snapshot; raises ``MetadataError`` (INTERNAL) if it is not valid."""
    try:
        msg = pb.MetadataSnapshot().parse(data)
    except Exception as exc:  # betterproto raises assorted errors on garbage
        raise internal(f"undecodable metadata snapshot: {exc}") from exc
    if msg.version != SNAPSHOT_VERSION:
        raise internal(f"unsupported metadata snapshot version {msg.version}")
    state = MetadataState(applied_index=msg.applied_index)
    for s in msg.streams:
        stream = stream_from_proto(s)
        if stream.name in state.streams:
            raise internal(f"metadata snapshot has stream {stream.name} twice")
        state.streams[stream.name] = stream
    for srv in msg.servers:
        state.servers[srv.id] = server_from_proto(srv)
    for g in msg.groups:
        state.groups[g.id] = group_from_proto(g)
    try:
        state.check()
    except AssertionError as exc:
        raise internal(f"inconsistent metadata snapshot: {exc}") from exc
    return state
