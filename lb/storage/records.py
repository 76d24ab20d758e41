"""Record bodies: the protobuf encoding of the fixed fields of Liftbridge's ``Message``.

Why the body is protobuf: the Subscribe hot path answers with a ``Message`` whose per-read
fields (offset, timestamp, stream, partition) are prepended to the stored body by plain
concatenation, so a record is never re-encoded on the way out (see ``message_bytes``).
Field numbers follow api.proto: 2 key, 3 value, 7 subject, 8 replySubject, 9 headers,
10 ackInbox, 11 correlationId, 12 ackPolicy. ``encode_body`` writes them in field order, so the
key, when present, is always the first field; ``key_of`` relies on that for its fast path and
falls back to a full parse for bodies made elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from lb import protowire as pw

_KEY_TAG = 0x12  # field 2, wire type LEN


@dataclass(frozen=True, slots=True)
class MessageIn:
    """A message to append. ``timestamp_ns == 0`` means "assign at append" (the ``now_ns``)."""

    value: bytes
    key: bytes = b""
    headers: dict[str, bytes] | None = None
    subject: str = ""
    reply_subject: str = ""
    correlation_id: str = ""
    ack_inbox: str = ""
    ack_policy: int = 0
    timestamp_ns: int = 0


@dataclass(frozen=True, slots=True)
class MessageFields:
    """The decoded fixed fields of a stored body."""

    key: bytes = b""
    value: bytes = b""
    subject: str = ""
    reply_subject: str = ""
    headers: dict[str, bytes] | None = None
    ack_inbox: str = ""
    correlation_id: str = ""
    ack_policy: int = 0


def encode_body(m: MessageIn) -> bytes:
    """The protobuf wire bytes of ``m``'s fixed ``Message`` fields (no offset/timestamp)."""
    if m.key:
        out = pw.field_bytes(2, m.key) + pw.field_bytes(3, m.value)
    else:
        out = pw.field_bytes(3, m.value)
    if m.subject:
        out += pw.field_str(7, m.subject)
    if m.reply_subject:
        out += pw.field_str(8, m.reply_subject)
    if m.headers:
        out += pw.field_map_str_bytes(9, m.headers)
    if m.ack_inbox:
        out += pw.field_str(10, m.ack_inbox)
    if m.correlation_id:
        out += pw.field_str(11, m.correlation_id)
    if m.ack_policy:
        out += pw.field_varint(12, m.ack_policy)
    return out


def decode_body(body: bytes | memoryview) -> MessageFields:
    """Decode a stored body. Unknown fields are ignored (forward compatibility)."""
    key = value = b""
    subject = reply = inbox = corr = ""
    headers: dict[str, bytes] | None = None
    ack_policy = 0
    for num, wt, val in pw.iter_fields(body):
        if wt == pw.WIRE_LEN:
            assert isinstance(val, bytes)
            if num == 2:
                key = val
            elif num == 3:
                value = val
            elif num == 7:
                subject = val.decode()
            elif num == 8:
                reply = val.decode()
            elif num == 9:
                k, v = pw.decode_map_entry_str_bytes(val)
                if headers is None:
                    headers = {}
                headers[k] = v
            elif num == 10:
                inbox = val.decode()
            elif num == 11:
                corr = val.decode()
        elif wt == pw.WIRE_VARINT and num == 12:
            assert isinstance(val, int)
            ack_policy = pw.to_int32(val)
    return MessageFields(key, value, subject, reply, headers, inbox, corr, ack_policy)


def key_of(body: bytes) -> bytes:
    """The key (field 2) of a body, cheaply; ``b""`` when there is none or the body is not
    valid protobuf (such a message is then treated as unkeyed: compaction keeps it)."""
    if not body:
        return b""
    if body[0] == _KEY_TAG and len(body) > 1:
        n = body[1]
        if n < 0x80:
            if 2 + n <= len(body):
                return body[2 : 2 + n]
        else:
            try:
                length, pos = pw.decode_varint(body, 1)
            except pw.DecodeError:
                return b""
            if pos + length <= len(body):
                return body[pos : pos + length]
        return b""
    try:
        for num, wt, val in pw.iter_fields(body):
            if num == 2 and wt == pw.WIRE_LEN:
                assert isinstance(val, bytes)
                return val
    except pw.DecodeError:
        pass
    return b""


class Record:
    """One stored message as read back: offset, timestamp, leader epoch and the raw body.

    A plain slots class (not a dataclass) because readers build hundreds of thousands per
    second and ``__init__`` cost matters.
    """

    __slots__ = ("body", "leader_epoch", "offset", "timestamp_ns")

    def __init__(self, offset: int, timestamp_ns: int, leader_epoch: int, body: bytes) -> None:
        self.offset = offset
        self.timestamp_ns = timestamp_ns
        self.leader_epoch = leader_epoch
        self.body = body

    def key(self) -> bytes:
        """The message key (field 2 of the body)."""
        return key_of(self.body)

    def decode(self) -> MessageFields:
        """All fixed fields of the body."""
        return decode_body(self.body)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.offset, self.timestamp_ns, self.leader_epoch, self.body) == (
            other.offset, other.timestamp_ns, other.leader_epoch, other.body)

    def __hash__(self) -> int:
        return hash((self.offset, self.timestamp_ns, self.leader_epoch, self.body))

    def __repr__(self) -> str:
        return (f"Record(offset={self.offset}, timestamp_ns={self.timestamp_ns}, "
                f"leader_epoch={self.leader_epoch}, body={self.body!r})")


def message_prefix(offset: int, timestamp_ns: int, stream_part: bytes) -> bytes:
    """Offset and timestamp fields; ``stream_part`` comes from ``stream_partition_fields``."""
    return pw.field_varint(1, offset) + pw.field_varint(4, timestamp_ns) + stream_part


def stream_partition_fields(stream: str, partition: int) -> bytes:
    """Fields 5 (stream) and 6 (partition); precompute once per subscription."""
    return pw.field_str(5, stream) + pw.field_varint(6, partition)


def message_bytes(record: Record, stream: str, partition: int) -> bytes:
    """The full protobuf ``Message`` for ``record``: per-read fields + stored body, no re-encode.

    Fields are not in numeric order (1, 4, 5, 6, then 2, 3, 7...); protobuf parsers accept any
    order, and this is what lets the body be sent as stored.
    """
    return (pw.field_varint(1, record.offset) + pw.field_varint(4, record.timestamp_ns)
            + pw.field_str(5, stream) + pw.field_varint(6, partition) + record.body)
