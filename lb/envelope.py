"""The Liftbridge envelope: how lb tells its own NATS messages (publishes, acks) from raw data.

Why: streams are attached to plain NATS subjects, so a partition leader receives both
Liftbridge publishes (an envelope around an api ``Message``) and arbitrary NATS payloads that
must be stored verbatim (ENV-4). The envelope is byte-compatible with Liftbridge
(documentation/envelope_protocol.md, spec ENV-1..7)::

    bytes 0-3  magic B9 0E 43 B4
    byte  4    version, only 0
    byte  5    HeaderLen: offset of the payload
    byte  6    flags; bit 0 = CRC-32C present (then HeaderLen is 12)
    byte  7    MsgType: 0 Publish, 1 Ack, 2-14 Liftbridge-internal
    bytes 8-11 big-endian CRC-32C (Castagnoli) of the payload, when flag bit 0 is set

Pure: no I/O, no clock. :func:`parse_published` never raises, whatever the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

import crc32c

from lb.codec import (
    AckFields,
    DecodeError,
    decode_ack_proto,
    decode_message_at,
    encode_ack_proto,
    encode_body,
    value_field,
)
from lb.protowire import encode_varint

__all__ = [
    "HEADER_LEN",
    "HEADER_LEN_CRC",
    "MAGIC",
    "AckFields",
    "IngestMessage",
    "MsgType",
    "RawBodyEncoder",
    "decode_ack",
    "decode_envelope",
    "encode_ack",
    "encode_envelope",
    "encode_publish",
    "parse_published",
]

MAGIC = b"\xb9\x0e\x43\xb4"
VERSION = 0
HEADER_LEN = 8
HEADER_LEN_CRC = 12
FLAG_CRC = 0x01


class MsgType(IntEnum):
    """Envelope message types. Only PUBLISH and ACK are public; lb does not speak the internal
    ones (its replication and propagation protocols are its own) but keeps their numbers."""

    PUBLISH = 0
    ACK = 1
    REPLICATION_REQUEST = 2
    REPLICATION_RESPONSE = 3
    RAFT_JOIN_REQUEST = 4
    RAFT_JOIN_RESPONSE = 5
    LEADER_EPOCH_OFFSET_REQUEST = 6
    LEADER_EPOCH_OFFSET_RESPONSE = 7
    PROPAGATED_REQUEST = 8
    PROPAGATED_RESPONSE = 9
    SERVER_INFO_REQUEST = 10
    SERVER_INFO_RESPONSE = 11
    PARTITION_STATUS_REQUEST = 12
    PARTITION_STATUS_RESPONSE = 13
    PARTITION_NOTIFICATION = 14


_HEADER_PUBLISH = MAGIC + bytes((VERSION, HEADER_LEN, 0, MsgType.PUBLISH))
_HEADER_ACK = MAGIC + bytes((VERSION, HEADER_LEN, 0, MsgType.ACK))


def encode_envelope(msg_type: int, payload: bytes, crc: bool = False) -> bytes:
    """Wrap ``payload`` in an envelope of ``msg_type``.

    The server's own envelopes use HeaderLen 8 and no CRC (ENV-6); ``crc=True`` makes the
    12-byte CRC-32C form that clients may send.
    """
    if not 0 <= msg_type <= 0xFF:
        raise ValueError(f"msg_type out of range: {msg_type}")
    if crc:
        header = MAGIC + bytes((VERSION, HEADER_LEN_CRC, FLAG_CRC, msg_type))
        return header + crc32c.crc32c(payload).to_bytes(4, "big") + payload
    return MAGIC + bytes((VERSION, HEADER_LEN, 0, msg_type)) + payload


def _check(data: bytes) -> int:
    """Header length of a valid envelope in ``data``, or -1. The one place validity is decided.

    Invalid: no magic, a version other than 0, HeaderLen below 8 or beyond the data (ENV-7:
    Go panics there; lb treats the data as raw), flag bit 0 with HeaderLen other than 12, or a
    CRC mismatch (ENV-2). Other flag bits are ignored, as Liftbridge does.
    """
    if data[:4] != MAGIC or len(data) < HEADER_LEN or data[4] != VERSION:
        return -1
    header_len = data[5]
    if header_len < HEADER_LEN or header_len > len(data):
        return -1
    if data[6] & FLAG_CRC:
        if header_len != HEADER_LEN_CRC:
            return -1
        if crc32c.crc32c(data[HEADER_LEN_CRC:]) != int.from_bytes(data[8:12], "big"):
            return -1
    return header_len


def decode_envelope(data: bytes) -> tuple[int, bytes] | None:
    """(msg_type, payload) of a valid envelope, or None when ``data`` is not one."""
    header_len = _check(data)
    if header_len < 0:
        return None
    return data[7], data[header_len:]


# --------------------------------------------------------------------------------------------
# Ingest: what a partition leader stores for a NATS message
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestMessage:
    """One NATS message as the partition leader will store it.

    Field names match ``lb.storage.MessageIn`` (minus ``timestamp_ns``, which the leader
    assigns at append time) so the two convert by name. ``headers`` already holds the server
    headers ``subject`` and ``reply`` (ENV-5). ``expected_offset`` is the envelope's
    ``Message.offset`` (ENV-3), 0 for raw data (OCC-2); it is checked only on OCC streams.
    """

    value: bytes
    key: bytes
    headers: dict[str, bytes]
    subject: str
    reply_subject: str
    correlation_id: str
    ack_inbox: str
    ack_policy: int
    expected_offset: int

    def encode_body(self) -> bytes:
        """The stored record body (``Message`` fields 2, 3, 7, 8, 9, 10, 11, 12)."""
        return encode_body(
            self.key,
            self.value,
            self.subject,
            self.reply_subject,
            self.headers,
            self.ack_inbox,
            self.correlation_id,
            self.ack_policy,
        )


# A frozen dataclass's generated __init__ costs ~1.5 µs for nine fields (one
# object.__setattr__ each); the ingest hot path fills the slots directly instead, which is
# what that __init__ does, at a third of the cost. Same object, same eq/repr/hash.
_new_object = object.__new__
_INGEST_FIELDS = (
    "value",
    "key",
    "headers",
    "subject",
    "reply_subject",
    "correlation_id",
    "ack_inbox",
    "ack_policy",
    "expected_offset",
)
# A field added to IngestMessage must be added here too, or construction would leave it unset.
assert tuple(f.name for f in fields(IngestMessage)) == _INGEST_FIELDS
_slot_setters = tuple(IngestMessage.__dict__[name].__set__ for name in _INGEST_FIELDS)
(_set_value, _set_key, _set_headers, _set_subject, _set_reply, _set_cid, _set_inbox,
 _set_policy, _set_expected) = _slot_setters  # fmt: skip


def _ingest(
    value: bytes,
    key: bytes,
    headers: dict[str, bytes],
    subject: str,
    reply_subject: str,
    correlation_id: str,
    ack_inbox: str,
    ack_policy: int,
    expected_offset: int,
) -> IngestMessage:
    """``IngestMessage(...)`` without the frozen-dataclass __init__ overhead."""
    m = _new_object(IngestMessage)
    _set_value(m, value)
    _set_key(m, key)
    _set_headers(m, headers)
    _set_subject(m, subject)
    _set_reply(m, reply_subject)
    _set_cid(m, correlation_id)
    _set_inbox(m, ack_inbox)
    _set_policy(m, ack_policy)
    _set_expected(m, expected_offset)
    return m


def parse_published(data: bytes, subject: str, reply: str) -> IngestMessage:
    """Turn a NATS message (payload, subject, reply subject) into what the leader stores.

    A valid Publish envelope whose payload parses as an api ``Message`` contributes key,
    value, user headers, ackInbox, correlationId, ackPolicy and offset-as-expectedOffset
    (ENV-3). Anything else (no magic, bad version/length/CRC, another MsgType, unparsable
    protobuf) is stored verbatim as the value with no key, no user headers and no ack (ENV-4).
    Either way the server headers ``subject`` and ``reply`` are set, overriding user headers
    of those names (ENV-5). Never raises.

    The raw case is the common one for foreign publishers and costs one 4-byte compare.
    """
    subject_b = subject.encode()
    reply_b = reply.encode()
    if data[:4] == MAGIC:
        try:
            parsed = _parse_envelope_message(data, subject_b, reply_b, subject, reply)
        except Exception:  # never raise on hostile input: store it raw instead
            parsed = None
        if parsed is not None:
            return parsed
    return _ingest(
        bytes(data), b"", {"subject": subject_b, "reply": reply_b}, subject, reply, "", "", 0, 0
    )


RAW_TAILS_MAX = 256
"""Distinct (subject, reply) pairs a :class:`RawBodyEncoder` remembers before starting over."""


class RawBodyEncoder:
    """The stored body of a raw (non-envelope) NATS message, without the general path.

    For raw data, ``parse_published(data, subject, reply).encode_body()`` is the value field
    followed by fields that depend only on the subject and reply: the subject, the reply and
    the server headers (ENV-5). Those are encoded once per pair and reused: on a partition fed
    by plain NATS publishers, building them per message was a third of lb's ingest CPU (the
    header map alone 12 %; tools/bench P6 profile). Byte-identical (property-tested). One per
    partition; bounded.
    """

    __slots__ = ("_tails",)

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str], bytes] = {}

    def body(self, data: bytes, subject: str, reply: str) -> bytes:
        """``parse_published(data, subject, reply).encode_body()`` for ``data`` that does not
        start with :data:`MAGIC` (so cannot be an envelope)."""
        tail = self._tails.get((subject, reply))
        if tail is None:
            if len(self._tails) >= RAW_TAILS_MAX:
                self._tails.clear()
            headers = {"subject": subject.encode(), "reply": reply.encode()}
            tail = encode_body(b"", b"", subject, reply, headers)
            self._tails[(subject, reply)] = tail
        return value_field(bytes(data)) + tail if data else tail


def _parse_envelope_message(
    data: bytes, subject_b: bytes, reply_b: bytes, subject: str, reply: str
) -> IngestMessage | None:
    header_len = _check(data)
    if header_len < 0 or data[7] != MsgType.PUBLISH:
        return None
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        m = decode_message_at(data, header_len, len(data))
    except DecodeError:
        return None
    headers = m[8]
    headers["subject"] = subject_b
    headers["reply"] = reply_b
    # m: offset, key, value, timestamp, stream, partition, subject, reply, headers,
    #    ack_inbox, correlation_id, ack_policy
    return _ingest(m[2], m[1], headers, subject, reply, m[10], m[9], m[11], m[0])


# --------------------------------------------------------------------------------------------
# Envelopes the server and the API produce
# --------------------------------------------------------------------------------------------


def encode_ack(
    *,
    stream: str = "",
    partition_subject: str = "",
    msg_subject: str = "",
    offset: int = 0,
    ack_inbox: str = "",
    correlation_id: str = "",
    ack_policy: int = 0,
    reception_timestamp_ns: int = 0,
    commit_timestamp_ns: int = 0,
    ack_error: int = 0,
) -> bytes:
    """An ack as published on NATS to ``ack_inbox``: envelope MsgType 1 around an ``Ack``
    (ACK-4), HeaderLen 8, no CRC (ENV-6). Fields as in ACK-2."""
    return _HEADER_ACK + encode_ack_proto(
        stream=stream,
        partition_subject=partition_subject,
        msg_subject=msg_subject,
        offset=offset,
        ack_inbox=ack_inbox,
        correlation_id=correlation_id,
        ack_policy=ack_policy,
        reception_timestamp_ns=reception_timestamp_ns,
        commit_timestamp_ns=commit_timestamp_ns,
        ack_error=ack_error,
    )


def decode_ack(data: bytes) -> AckFields | None:
    """The ``Ack`` in an ack envelope, or None if ``data`` is not a valid one."""
    try:
        header_len = _check(data)
        if header_len < 0 or data[7] != MsgType.ACK:
            return None
        return decode_ack_proto(bytes(data[header_len:]))
    except (DecodeError, IndexError, TypeError):
        return None


def encode_publish(
    key: bytes = b"",
    value: bytes = b"",
    headers: dict[str, bytes] | None = None,
    ack_inbox: str = "",
    correlation_id: str = "",
    ack_policy: int = 0,
    expected_offset: int = 0,
) -> bytes:
    """A Publish envelope (MsgType 0, HeaderLen 8, no CRC) around an api ``Message``.

    This is what Publish/PublishToSubject put on NATS (PUB-1, PUBS-1); ``expected_offset``
    travels as ``Message.offset`` (ENV-3). Fields are written in numeric order: 1, 2, 3, 9,
    10, 11, 12.
    """
    head = _HEADER_PUBLISH
    if expected_offset:
        head += b"\x08" + encode_varint(expected_offset)
    # encode_body writes 2, 3, (7, 8 empty), 9, 10, 11, 12: exactly the remaining fields.
    return head + encode_body(
        key, value, "", "", headers or {}, ack_inbox, correlation_id, ack_policy
    )
