"""Map lb.raft messages to and from ``lbinternal.RaftMessage`` bytes for the NATS transport."""

from __future__ import annotations

from lb._proto import lbinternal as pb
from lb.raft.messages import ConfState, Entry, EntryKind, Message, MessageType, Snapshot


def _conf_to_pb(cs: ConfState) -> pb.RaftConfState:
    return pb.RaftConfState(
        voters=list(cs.voters), learners=list(cs.learners), cluster_id=cs.cluster_id
    )


def _conf_from_pb(cs: pb.RaftConfState) -> ConfState:
    return ConfState(tuple(cs.voters), tuple(cs.learners), cs.cluster_id)


def encode_message(m: Message) -> bytes:
    msg = pb.RaftMessage(
        type=int(m.type),
        from_=m.from_,
        to=m.to,
        term=m.term,
        log_term=m.log_term,
        index=m.index,
        entries=[
            pb.RaftEntry(term=e.term, index=e.index, kind=int(e.kind), data=e.data)
            for e in m.entries
        ],
        commit=m.commit,
        reject=m.reject,
        reject_hint=m.reject_hint,
        transfer=m.transfer,
        cluster_id=m.cluster_id,
    )
    if m.snapshot is not None:
        s = m.snapshot
        msg.snapshot = pb.RaftSnapshot(
            index=s.index, term=s.term, conf_state=_conf_to_pb(s.conf_state), data=s.data
        )
    return bytes(msg)


def decode_message(data: bytes) -> Message:
    """Parse a RaftMessage; raises ValueError on garbage."""
    try:
        msg = pb.RaftMessage().parse(data)
        snapshot = None
        if msg.type == MessageType.SNAPSHOT:
            s = msg.snapshot
            snapshot = Snapshot(
                index=s.index, term=s.term, conf_state=_conf_from_pb(s.conf_state), data=s.data
            )
        return Message(
            type=MessageType(msg.type),
            from_=msg.from_,
            to=msg.to,
            term=msg.term,
            log_term=msg.log_term,
            index=msg.index,
            entries=[
                Entry(term=e.term, index=e.index, kind=EntryKind(e.kind), data=e.data)
                for e in msg.entries
            ],
            commit=msg.commit,
            reject=msg.reject,
            reject_hint=msg.reject_hint,
            snapshot=snapshot,
            transfer=msg.transfer,
            cluster_id=msg.cluster_id,
        )
    except (ValueError, IndexError, KeyError, AssertionError) as exc:
        raise ValueError(f"bad Raft message: {exc}") from exc
