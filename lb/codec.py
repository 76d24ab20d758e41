"""Fast protobuf codecs for the hot-path messages of the public API.

Why this exists: betterproto needs ~90 µs to encode and ~190 µs to decode one ``Message``
(design.md), which caps a Subscribe stream near 8k msg/s. The hot paths (Subscribe,
Publish/PublishAsync, acks, NATS ingest) instead build and parse the wire bytes here, in a
few µs, with hand-written loops specialised per message. The schema's source of truth stays
``protos/api.proto`` and the generated betterproto classes; ``tests/test_codec.py`` shows with
property tests that these bytes decode to the same values through betterproto and through the
upb protobuf runtime, in both directions.

What it covers:

* ``PublishRequest``: decode to :class:`PublishRequestFields`.
* ``PublishResponse``: encode (with a pre-encoded ``Ack`` and/or a ``PublishAsyncError``);
  decode for clients and tests.
* ``Ack``: encode (shared with the NATS ack envelope) and decode; :class:`AckEncoder` builds
  one partition's acks from a prebuilt head (the partition writer's per-message path).
* ``Message``: :func:`message_from_body` turns a stored record body (see
  ``lb.envelope.IngestMessage.encode_body``) into Subscribe response bytes by prepending
  fields 1, 4, 5, 6; full encode and decode for clients and tests. The Subscribe handshake
  (SUB-3) is the empty message, ``b""``.
* :class:`PassthroughCodec`: a grpclib codec that sends ``bytes`` as already-encoded messages
  and hands ``RawBytes`` requests to the handler undecoded, while betterproto messages keep
  working.

Decoding follows protobuf semantics: unknown fields (groups included) are skipped, a known
field with an unexpected wire type is treated as unknown (as upb and protobuf-go do), the last
occurrence of a scalar wins, repeated embedded messages merge, strings must be valid UTF-8.
Malformed input raises :class:`lb.protowire.DecodeError` and nothing else.

Pure: no I/O, no clock, and no grpclib import (grpclib's codec interface is duck-typed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from lb.protowire import DecodeError, skip_field

__all__ = [
    "AckEncoder",
    "AckError",
    "AckFields",
    "AckPolicy",
    "DecodeError",
    "MessageFields",
    "PassthroughCodec",
    "PublishAsyncErrorCode",
    "PublishRequestFields",
    "PublishResponseFields",
    "RawBytes",
    "decode_ack_proto",
    "decode_message",
    "decode_message_at",
    "decode_publish_request",
    "decode_publish_response",
    "encode_ack_proto",
    "encode_body",
    "encode_message",
    "encode_publish_request",
    "encode_publish_response",
    "message_from_body",
    "strip_ack_fields",
]

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
_FIELD_NUMBER_MAX = (1 << 29) - 1


class AckPolicy(IntEnum):
    """When the server acks a message (api.proto ``AckPolicy``)."""

    LEADER = 0
    ALL = 1
    NONE = 2


class AckError(IntEnum):
    """``Ack.Error``: why a message was refused (OK when it was stored)."""

    OK = 0
    UNKNOWN = 1
    INCORRECT_OFFSET = 2
    TOO_LARGE = 3
    ENCRYPTION = 4


class PublishAsyncErrorCode(IntEnum):
    """``PublishAsyncError.Code``: per-message failures on a PublishAsync stream (PUBA-2)."""

    UNKNOWN = 0
    BAD_REQUEST = 1
    NOT_FOUND = 2
    INTERNAL = 3
    READONLY = 4
    INCORRECT_OFFSET = 5
    ENCRYPTION_FAILED = 6
    PERMISSION_DENIED = 7


# --------------------------------------------------------------------------------------------
# Varint and field encoding (local, inlined fast paths; lb.protowire has the general forms)
# --------------------------------------------------------------------------------------------


def _uvarint(value: int) -> bytes:
    """Varint of an int64/uint64 (negative values as 10-byte two's complement)."""
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        if value == -1:
            return _MINUS_ONE
        value &= _MASK64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
_MINUS_ONE = b"\xff" * 9 + b"\x01"


def _len_field(tag: bytes, value: bytes) -> bytes:
    """A length-delimited field with a precomputed tag; callers skip empty values."""
    n = len(value)
    return tag + (_SMALL[n] if n < 0x80 else _uvarint(n)) + value


def _map_str_bytes(tag: bytes, mapping: dict[str, bytes]) -> bytes:
    """A ``map<string, bytes>`` field: one entry (1: key, 2: value) per item, defaults omitted."""
    parts = []
    small = _SMALL
    for k, v in mapping.items():
        kb = k.encode()
        nk = len(kb)
        nv = len(v)
        if nk < 0x80 and nv < 0x80:  # the usual case, inlined: 2-byte entry header
            if nk and nv:
                n = nk + nv + 4
                if n < 0x80:
                    parts.append(
                        b"".join((tag, small[n], b"\x0a", small[nk], kb, b"\x12", small[nv], v))
                    )
                    continue
            elif nk:
                parts.append(b"".join((tag, small[nk + 2], b"\x0a", small[nk], kb)))
                continue
        entry = (_len_field(b"\x0a", kb) if kb else b"") + (_len_field(b"\x12", v) if v else b"")
        parts.append(_len_field(tag, entry))
    return b"".join(parts)


# Precomputed tags: (field_number << 3) | wire_type, all single bytes.
def _t(field_number: int, wire_type: int) -> bytes:
    return bytes(((field_number << 3) | wire_type,))


# --------------------------------------------------------------------------------------------
# Decoding core
# --------------------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint (up to 10 bytes, truncated to 64 bits like protobuf-go)."""
    if buf[pos] == 0xFF and buf[pos : pos + 10] == _MINUS_ONE:
        return _MASK64, pos + 10  # -1: Go clients send it as expectedOffset by default
    result = 0
    shift = 0
    while True:
        b = buf[pos]  # IndexError on truncation; callers turn it into DecodeError
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


def _int32(v: int) -> int:
    v &= _MASK32
    return v - (1 << 32) if v >= (1 << 31) else v


_skip = skip_field  # unknown fields: one implementation, in lb.protowire


def _decode_map_entry(buf: bytes, pos: int, end: int) -> tuple[str, bytes]:
    """Decode one ``map<string, bytes>`` entry occupying ``buf[pos:end]``."""
    key = b""
    value = b""
    while pos < end:
        t = buf[pos]
        if t < 0x80:
            pos += 1
        else:
            t, pos = _varint(buf, pos)
        fn = t >> 3
        wt = t & 7
        if fn == 0 or fn > _FIELD_NUMBER_MAX:
            raise DecodeError("bad field number")
        if wt == 2 and (fn == 1 or fn == 2):
            n = buf[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(buf, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError("truncated map entry")
            if fn == 1:
                if key:
                    key.decode()  # Go checks every occurrence, not just the one that stays
                key = buf[pos:stop]
            else:
                value = buf[pos:stop]
            pos = stop
        else:
            pos = _skip(buf, pos, end, wt, fn)
    if pos != end:
        raise DecodeError("map entry overruns")
    return key.decode(), value


# Message field numbers -> wire type expected (2 = LEN, 0 = VARINT).
_MESSAGE_LEN_FIELDS = frozenset((2, 3, 5, 7, 8, 9, 10, 11))
_MESSAGE_VARINT_FIELDS = frozenset((1, 4, 6, 12))


def decode_message_at(buf: bytes, pos: int, end: int) -> tuple[Any, ...]:
    """Decode an api ``Message`` in ``buf[pos:end]`` into a plain tuple, the fastest shape.

    Order as in :class:`MessageFields`: offset, key, value, timestamp_ns, stream, partition,
    subject, reply_subject, headers, ack_inbox, correlation_id, ack_policy. Taking a position
    lets the envelope parser decode its payload without slicing a copy.
    """
    offset = 0
    key = b""
    value = b""
    timestamp = 0
    stream = b""
    partition = 0
    subject = b""
    reply = b""
    headers: dict[str, bytes] = {}
    ack_inbox = b""
    correlation_id = b""
    ack_policy = 0
    try:
        while pos < end:
            t = buf[pos]
            if t < 0x80:
                pos += 1
            else:
                t, pos = _varint(buf, pos)
            fn = t >> 3
            wt = t & 7
            if fn == 0 or fn > _FIELD_NUMBER_MAX:
                raise DecodeError("bad field number")
            if wt == 2 and fn in _MESSAGE_LEN_FIELDS:
                n = buf[pos]
                if n < 0x80:
                    pos += 1
                else:
                    n, pos = _varint(buf, pos)
                stop = pos + n
                if stop > end:
                    raise DecodeError("truncated length-delimited field")
                if fn == 3:
                    value = buf[pos:stop]
                elif fn == 2:
                    key = buf[pos:stop]
                elif fn == 9:
                    k, v = _decode_map_entry(buf, pos, stop)
                    headers[k] = v
                # A repeated string field: Go's protobuf rejects invalid UTF-8 in every
                # occurrence, not only in the one that stays, so the earlier one is checked.
                elif fn == 7:
                    if subject:
                        subject.decode()
                    subject = buf[pos:stop]
                elif fn == 8:
                    if reply:
                        reply.decode()
                    reply = buf[pos:stop]
                elif fn == 5:
                    if stream:
                        stream.decode()
                    stream = buf[pos:stop]
                elif fn == 10:
                    if ack_inbox:
                        ack_inbox.decode()
                    ack_inbox = buf[pos:stop]
                else:  # 11
                    if correlation_id:
                        correlation_id.decode()
                    correlation_id = buf[pos:stop]
                pos = stop
            elif wt == 0 and fn in _MESSAGE_VARINT_FIELDS:
                v = buf[pos]
                if v < 0x80:
                    pos += 1
                else:
                    v, pos = _varint(buf, pos)
                if fn == 1:
                    offset = _int64(v)
                elif fn == 4:
                    timestamp = _int64(v)
                elif fn == 6:
                    partition = _int32(v)
                else:  # 12
                    ack_policy = _int32(v)
            else:
                pos = _skip(buf, pos, end, wt, fn)
        if pos != end:
            raise DecodeError("field overruns the message")
        return (
            offset,
            key,
            value,
            timestamp,
            stream.decode(),
            partition,
            subject.decode(),
            reply.decode(),
            headers,
            ack_inbox.decode(),
            correlation_id.decode(),
            ack_policy,
        )
    except IndexError as exc:
        raise DecodeError("truncated message") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError("string field is not valid UTF-8") from exc


# --------------------------------------------------------------------------------------------
# Message
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class MessageFields:
    """An api ``Message`` as plain values (``timestamp_ns`` is proto field ``timestamp``).

    Enum fields stay ints so unknown values survive a round trip.
    """

    offset: int = 0
    key: bytes = b""
    value: bytes = b""
    timestamp_ns: int = 0
    stream: str = ""
    partition: int = 0
    subject: str = ""
    reply_subject: str = ""
    headers: dict[str, bytes] = field(default_factory=dict)
    ack_inbox: str = ""
    correlation_id: str = ""
    ack_policy: int = 0


_M_OFFSET = _t(1, 0)
_M_KEY = _t(2, 2)
_M_VALUE = _t(3, 2)
_M_TIMESTAMP = _t(4, 0)
_M_STREAM = _t(5, 2)
_M_PARTITION = _t(6, 0)
_M_SUBJECT = _t(7, 2)
_M_REPLY = _t(8, 2)
_M_HEADERS = _t(9, 2)
_M_ACK_INBOX = _t(10, 2)
_M_CORRELATION_ID = _t(11, 2)
_M_ACK_POLICY = _t(12, 0)


def encode_body(
    key: bytes,
    value: bytes,
    subject: str,
    reply_subject: str,
    headers: dict[str, bytes],
    ack_inbox: str = "",
    correlation_id: str = "",
    ack_policy: int = 0,
) -> bytes:
    """The stored record body: ``Message`` fields 2, 3, 7, 8, 9, 10, 11, 12 in that order.

    Why this shape: a Subscribe response is then just the body with fields 1, 4, 5, 6 put in
    front (:func:`message_from_body`), no decode or re-encode per message. The ack fields come
    last so :func:`strip_ack_fields` can cut them off as a suffix. proto3 defaults are omitted.
    """
    parts = []
    if key:
        parts.append(_len_field(_M_KEY, key))
    if value:
        parts.append(_len_field(_M_VALUE, value))
    if subject:
        parts.append(_len_field(_M_SUBJECT, subject.encode()))
    if reply_subject:
        parts.append(_len_field(_M_REPLY, reply_subject.encode()))
    if headers:
        parts.append(_map_str_bytes(_M_HEADERS, headers))
    if ack_inbox:
        parts.append(_len_field(_M_ACK_INBOX, ack_inbox.encode()))
    if correlation_id:
        parts.append(_len_field(_M_CORRELATION_ID, correlation_id.encode()))
    if ack_policy:
        parts.append(_M_ACK_POLICY + _uvarint(ack_policy))
    return b"".join(parts)


def value_field(value: bytes) -> bytes:
    """Field 3 (value) of a ``Message``, as :func:`encode_body` writes it (empty: nothing)."""
    return _len_field(_M_VALUE, value) if value else b""


def strip_ack_fields(body: bytes) -> bytes:
    """The body without its trailing ack fields (10 ackInbox, 11 correlationId, 12 ackPolicy).

    Subscribe does not deliver them (SUB-4). Relies on :func:`encode_body`'s field order: the
    body is cut at the first field numbered 10 or more. Cost: one tag/length hop per field.
    """
    cut = _ack_suffix_start(body, 0)
    return body if cut == len(body) else body[:cut]


def message_from_body(
    offset: int,
    timestamp_ns: int,
    stream: str,
    partition: int,
    body: bytes,
    *,
    include_ack_fields: bool = False,
) -> bytes:
    """Encode a Subscribe ``Message``: fields 1, 4, 5, 6 prepended to a stored body.

    protobuf accepts fields in any order and the body never holds 1, 4, 5 or 6, so the result
    decodes exactly like a freshly encoded message. By default the body's ack fields are
    dropped (SUB-4: ackInbox, correlationId and ackPolicy are not delivered).
    """
    if not include_ack_fields:
        body = strip_ack_fields(body)
    head = b""
    if offset:
        head = _M_OFFSET + _uvarint(offset)
    if timestamp_ns:
        head += _M_TIMESTAMP + _uvarint(timestamp_ns)
    if stream:
        head += _len_field(_M_STREAM, stream.encode())
    if partition:
        head += _M_PARTITION + _uvarint(partition)
    return head + body


class SubscribeEncoder:
    """:func:`message_from_body` for one partition's subscription, reusing what repeats.

    The stream and partition fields are encoded once, and the timestamp field once per distinct
    timestamp (every message of a write batch shares one): the 9-byte nanosecond varint was a
    third of Subscribe's CPU (tools/bench P5 profile). The offset field is built in one step.

    Cutting the ack fields (:func:`strip_ack_fields`, 18% of Subscribe's CPU) walks every field
    of the body; here only the key and value are walked, and the rest of the body (subject,
    reply, headers, ack fields: usually the same bytes for consecutive messages of one
    publisher) is compared with the previous body's rest, whose cut point is then reused. A
    cut depends only on the bytes walked, so reusing it for equal bytes gives the same result.

    Output is byte-identical to :func:`message_from_body`, and malformed bodies raise the same
    :class:`DecodeError` (property-tested).
    """

    __slots__ = ("_rest", "_rest_cut", "_tail", "_ts", "_ts_field")

    def __init__(self, stream: str, partition: int) -> None:
        tail = _len_field(_M_STREAM, stream.encode()) if stream else b""
        if partition:
            tail += _M_PARTITION + _uvarint(partition)
        self._tail = tail
        self._ts = 0
        self._ts_field = b""
        self._rest = b""  # the previous body's bytes after its key and value
        self._rest_cut = 0  # where its ack fields start, relative to the rest

    def encode(self, offset: int, timestamp_ns: int, body: bytes) -> bytes:
        if timestamp_ns != self._ts:
            self._ts = timestamp_ns
            self._ts_field = _M_TIMESTAMP + _uvarint(timestamp_ns) if timestamp_ns else b""
        return b"".join(
            (_offset_field(offset), self._ts_field, self._tail, self._strip(body))
        )

    def encode_records(self, records: Iterable[Any]) -> list[bytes]:
        """:meth:`encode` for each record (``offset``, ``timestamp_ns`` and ``body``
        attributes, e.g. ``lb.storage.Record``): one call per read batch."""
        out = []
        append = out.append
        join = b"".join
        strip = self._strip
        tail = self._tail
        for rec in records:
            ts = rec.timestamp_ns
            if ts != self._ts:
                self._ts = ts
                self._ts_field = _M_TIMESTAMP + _uvarint(ts) if ts else b""
            append(join((_offset_field(rec.offset), self._ts_field, tail, strip(rec.body))))
        return out

    def _strip(self, body: bytes) -> bytes:
        """:func:`strip_ack_fields`, with the cut of an unchanged rest reused."""
        pos = 0
        end = len(body)
        try:
            # Hop the key and value (fields 2 and 3): large and different in every message.
            while pos < end:
                t = body[pos]
                if t != 0x1A and t != 0x12:
                    break
                n = body[pos + 1]
                if n < 0x80:
                    pos += 2 + n
                else:
                    n2 = body[pos + 2]
                    if n2 < 0x80:
                        pos += 3 + (n & 0x7F) + (n2 << 7)
                    else:
                        n, p = _varint(body, pos + 1)
                        pos = p + n
        except IndexError as exc:
            raise DecodeError("truncated body") from exc
        rest = self._rest
        if end - pos == len(rest) and body.endswith(rest):
            cut = pos + self._rest_cut
        else:
            cut = _ack_suffix_start(body, pos)
            self._rest = body[pos:]
            self._rest_cut = cut - pos
        return body if cut == end else body[:cut]


def _offset_field(offset: int) -> bytes:
    """Field 1 (offset) of a ``Message``: tag and varint in one step for offsets < 2**28."""
    if offset < 0x80:
        if offset > 0:
            return _OFFSET_FIELDS[offset]
        if offset == 0:
            return b""
    elif offset < 0x4000:
        return bytes((0x08, (offset & 0x7F) | 0x80, offset >> 7))
    elif offset < 0x200000:
        return bytes((0x08, (offset & 0x7F) | 0x80, ((offset >> 7) & 0x7F) | 0x80, offset >> 14))
    elif offset < 0x10000000:
        return bytes(
            (
                0x08,
                (offset & 0x7F) | 0x80,
                ((offset >> 7) & 0x7F) | 0x80,
                ((offset >> 14) & 0x7F) | 0x80,
                offset >> 21,
            )
        )
    return _M_OFFSET + _uvarint(offset)


_OFFSET_FIELDS = [_M_OFFSET + bytes((i,)) for i in range(0x80)]


def _ack_suffix_start(body: bytes, pos: int) -> int:
    """Where :func:`strip_ack_fields` cuts ``body``, walking from the field boundary ``pos``:
    the first field numbered 10 or more, or the end. Raises DecodeError when truncated."""
    end = len(body)
    try:
        while pos < end:
            t = body[pos]
            if t >= 0x50:  # field >= 10, or a multi-byte tag (field >= 16): the ack suffix
                return pos
            if t & 7 == 2:
                n = body[pos + 1]
                if n < 0x80:
                    pos += 2 + n
                else:
                    n, p = _varint(body, pos + 1)
                    pos = p + n
            else:
                pos = _skip(body, pos + 1, end, t & 7, t >> 3)
    except IndexError as exc:
        raise DecodeError("truncated body") from exc
    if pos != end:
        raise DecodeError("truncated body")
    return end


def encode_message(m: MessageFields) -> bytes:
    """Encode a whole ``Message`` (clients, tests, envelopes), fields in numeric order."""
    parts = []
    if m.offset:
        parts.append(_M_OFFSET + _uvarint(m.offset))
    if m.key:
        parts.append(_len_field(_M_KEY, m.key))
    if m.value:
        parts.append(_len_field(_M_VALUE, m.value))
    if m.timestamp_ns:
        parts.append(_M_TIMESTAMP + _uvarint(m.timestamp_ns))
    if m.stream:
        parts.append(_len_field(_M_STREAM, m.stream.encode()))
    if m.partition:
        parts.append(_M_PARTITION + _uvarint(m.partition))
    parts.append(
        encode_body(
            b"",
            b"",
            m.subject,
            m.reply_subject,
            m.headers,
            m.ack_inbox,
            m.correlation_id,
            m.ack_policy,
        )
    )
    return b"".join(parts)


def decode_message(data: bytes) -> MessageFields:
    """Decode ``Message`` bytes (a Subscribe response, an envelope payload)."""
    return MessageFields(*decode_message_at(data, 0, len(data)))


# --------------------------------------------------------------------------------------------
# PublishRequest
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PublishRequestFields:
    """A decoded ``PublishRequest``. Mutable on purpose: PublishAsync replaces ``ack_inbox``
    with its session inbox (PUBA-4)."""

    key: bytes = b""
    value: bytes = b""
    stream: str = ""
    partition: int = 0
    headers: dict[str, bytes] = field(default_factory=dict)
    ack_inbox: str = ""
    correlation_id: str = ""
    ack_policy: int = 0
    expected_offset: int = 0


def decode_publish_request(data: bytes) -> PublishRequestFields:
    """Decode ``PublishRequest`` bytes (Publish and PublishAsync hot path).

    ``partition`` is int32 (a negative one arrives as a 10-byte varint); ``expected_offset``
    is int64 (-1 skips the OCC check).
    """
    key = b""
    value = b""
    stream = b""
    partition = 0
    headers: dict[str, bytes] = {}
    ack_inbox = b""
    correlation_id = b""
    ack_policy = 0
    expected_offset = 0
    pos = 0
    end = len(data)
    buf = data
    try:
        while pos < end:
            t = buf[pos]
            if t < 0x80:
                pos += 1
            else:
                t, pos = _varint(buf, pos)
            fn = t >> 3
            wt = t & 7
            if fn == 0 or fn > _FIELD_NUMBER_MAX:
                raise DecodeError("bad field number")
            if wt == 2 and (fn <= 3 or fn == 5 or fn == 6 or fn == 7):
                n = buf[pos]
                if n < 0x80:
                    pos += 1
                else:
                    n, pos = _varint(buf, pos)
                stop = pos + n
                if stop > end:
                    raise DecodeError("truncated length-delimited field")
                if fn == 2:
                    value = buf[pos:stop]
                elif fn == 1:
                    key = buf[pos:stop]
                elif fn == 3:
                    if stream:  # every occurrence must be UTF-8 (see decode_message_at)
                        stream.decode()
                    stream = buf[pos:stop]
                elif fn == 5:
                    k, v = _decode_map_entry(buf, pos, stop)
                    headers[k] = v
                elif fn == 6:
                    if ack_inbox:
                        ack_inbox.decode()
                    ack_inbox = buf[pos:stop]
                else:  # 7
                    if correlation_id:
                        correlation_id.decode()
                    correlation_id = buf[pos:stop]
                pos = stop
            elif wt == 0 and (fn == 4 or fn == 8 or fn == 9):
                v = buf[pos]
                if v < 0x80:
                    pos += 1
                else:
                    v, pos = _varint(buf, pos)
                if fn == 4:
                    partition = _int32(v)
                elif fn == 8:
                    ack_policy = _int32(v)
                else:
                    expected_offset = _int64(v)
            else:
                pos = _skip(buf, pos, end, wt, fn)
        if pos != end:
            raise DecodeError("field overruns the message")
        return PublishRequestFields(
            key,
            value,
            stream.decode(),
            partition,
            headers,
            ack_inbox.decode(),
            correlation_id.decode(),
            ack_policy,
            expected_offset,
        )
    except IndexError as exc:
        raise DecodeError("truncated message") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError("string field is not valid UTF-8") from exc


def encode_publish_request(r: PublishRequestFields) -> bytes:
    """Encode a ``PublishRequest`` (clients, benchmarks, tests)."""
    parts = []
    if r.key:
        parts.append(_len_field(b"\x0a", r.key))
    if r.value:
        parts.append(_len_field(b"\x12", r.value))
    if r.stream:
        parts.append(_len_field(b"\x1a", r.stream.encode()))
    if r.partition:
        parts.append(b"\x20" + _uvarint(r.partition))
    if r.headers:
        parts.append(_map_str_bytes(b"\x2a", r.headers))
    if r.ack_inbox:
        parts.append(_len_field(b"\x32", r.ack_inbox.encode()))
    if r.correlation_id:
        parts.append(_len_field(b"\x3a", r.correlation_id.encode()))
    if r.ack_policy:
        parts.append(b"\x40" + _uvarint(r.ack_policy))
    if r.expected_offset:
        parts.append(b"\x48" + _uvarint(r.expected_offset))
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# Ack
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckFields:
    """A decoded ``Ack`` (ACK-2). Timestamps are proto ``receptionTimestamp`` and
    ``commitTimestamp``, in ns."""

    stream: str = ""
    partition_subject: str = ""
    msg_subject: str = ""
    offset: int = 0
    ack_inbox: str = ""
    correlation_id: str = ""
    ack_policy: int = 0
    reception_timestamp_ns: int = 0
    commit_timestamp_ns: int = 0
    ack_error: int = 0

    def to_bytes(self) -> bytes:
        """This ack as protobuf ``Ack`` bytes."""
        return encode_ack_proto(
            stream=self.stream,
            partition_subject=self.partition_subject,
            msg_subject=self.msg_subject,
            offset=self.offset,
            ack_inbox=self.ack_inbox,
            correlation_id=self.correlation_id,
            ack_policy=self.ack_policy,
            reception_timestamp_ns=self.reception_timestamp_ns,
            commit_timestamp_ns=self.commit_timestamp_ns,
            ack_error=self.ack_error,
        )


def encode_ack_proto(
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
    """Encode protobuf ``Ack`` bytes (no envelope; ``lb.envelope.encode_ack`` adds one).

    Keyword arguments rather than an :class:`AckFields` so the per-message ack path builds
    no intermediate object.
    """
    parts = []
    if stream:
        parts.append(_len_field(b"\x0a", stream.encode()))
    if partition_subject:
        parts.append(_len_field(b"\x12", partition_subject.encode()))
    if msg_subject:
        parts.append(_len_field(b"\x1a", msg_subject.encode()))
    if offset:
        parts.append(b"\x20" + _uvarint(offset))
    if ack_inbox:
        parts.append(_len_field(b"\x2a", ack_inbox.encode()))
    if correlation_id:
        parts.append(_len_field(b"\x32", correlation_id.encode()))
    if ack_policy:
        parts.append(b"\x38" + _uvarint(ack_policy))
    if reception_timestamp_ns:
        parts.append(b"\x40" + _uvarint(reception_timestamp_ns))
    if commit_timestamp_ns:
        parts.append(b"\x48" + _uvarint(commit_timestamp_ns))
    if ack_error:
        parts.append(b"\x50" + _uvarint(ack_error))
    return b"".join(parts)


def decode_ack_proto(data: bytes) -> AckFields:
    """Decode protobuf ``Ack`` bytes."""
    strs = [b"", b"", b"", b"", b"", b""]  # fields 1, 2, 3, 5, 6 by index map below
    nums = [0, 0, 0, 0, 0]  # fields 4, 7, 8, 9, 10
    pos = 0
    end = len(data)
    buf = data
    try:
        while pos < end:
            t = buf[pos]
            if t < 0x80:
                pos += 1
            else:
                t, pos = _varint(buf, pos)
            fn = t >> 3
            wt = t & 7
            if fn == 0 or fn > _FIELD_NUMBER_MAX:
                raise DecodeError("bad field number")
            if wt == 2 and fn in _ACK_STR_INDEX:
                n, pos = _varint(buf, pos)
                stop = pos + n
                if stop > end:
                    raise DecodeError("truncated length-delimited field")
                strs[_ACK_STR_INDEX[fn]] = buf[pos:stop]
                pos = stop
            elif wt == 0 and fn in _ACK_NUM_INDEX:
                v, pos = _varint(buf, pos)
                nums[_ACK_NUM_INDEX[fn]] = v
            else:
                pos = _skip(buf, pos, end, wt, fn)
        if pos != end:
            raise DecodeError("field overruns the message")
        return AckFields(
            stream=strs[0].decode(),
            partition_subject=strs[1].decode(),
            msg_subject=strs[2].decode(),
            offset=_int64(nums[0]),
            ack_inbox=strs[3].decode(),
            correlation_id=strs[4].decode(),
            ack_policy=_int32(nums[1]),
            reception_timestamp_ns=_int64(nums[2]),
            commit_timestamp_ns=_int64(nums[3]),
            ack_error=_int32(nums[4]),
        )
    except IndexError as exc:
        raise DecodeError("truncated message") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError("string field is not valid UTF-8") from exc


_ACK_STR_INDEX = {1: 0, 2: 1, 3: 2, 5: 3, 6: 4}
_ACK_NUM_INDEX = {4: 0, 7: 1, 8: 2, 9: 3, 10: 4}

_ACK_INBOX_CACHE_MAX = 1024


class AckEncoder:
    """:func:`encode_ack_proto` for one partition's acks, reusing what repeats.

    Why: the partition writer builds one ack per message; encoding all ten fields each time was
    ~7% of the leader's CPU on PublishAsync (tools/bench P1 profile). Here the fields that are
    the same for a partition (stream, partitionSubject, and usually msgSubject) form a prebuilt
    head, the ackInbox field is cached per inbox (a PublishAsync session uses one inbox for all
    its messages), and the timestamp fields per distinct value (a write batch shares one
    reception time). Only offset, correlationId, ackPolicy and ackError are encoded per ack.

    ``prefix`` goes before the ``Ack`` bytes (e.g. the ack envelope header). Output is
    byte-identical to ``prefix + encode_ack_proto(...)`` (property-tested).
    """

    __slots__ = (
        "_base",
        "_commit",
        "_commit_field",
        "_head",
        "_inboxes",
        "_reception",
        "_reception_field",
        "_subject",
    )

    def __init__(self, stream: str, partition_subject: str, prefix: bytes = b"") -> None:
        base = prefix
        if stream:
            base += _len_field(b"\x0a", stream.encode())
        if partition_subject:
            base += _len_field(b"\x12", partition_subject.encode())
        self._base = base
        self._subject = ""
        self._head = base
        self._inboxes: dict[str, bytes] = {}
        self._reception = 0
        self._reception_field = b""
        self._commit = 0
        self._commit_field = b""

    def encode(
        self,
        msg_subject: str,
        offset: int,
        ack_inbox: str,
        correlation_id: str,
        ack_policy: int,
        reception_timestamp_ns: int,
        commit_timestamp_ns: int,
        ack_error: int = 0,
    ) -> bytes:
        """One ack: ``prefix`` + ``Ack`` bytes with these fields (defaults omitted)."""
        if msg_subject != self._subject:
            self._subject = msg_subject
            self._head = self._base + (
                _len_field(b"\x1a", msg_subject.encode()) if msg_subject else b""
            )
        parts = [self._head]
        if offset:
            parts.append(b"\x20" + _uvarint(offset))
        if ack_inbox:
            inbox = self._inboxes.get(ack_inbox)
            if inbox is None:
                if len(self._inboxes) >= _ACK_INBOX_CACHE_MAX:
                    self._inboxes.clear()
                inbox = self._inboxes[ack_inbox] = _len_field(b"\x2a", ack_inbox.encode())
            parts.append(inbox)
        if correlation_id:
            parts.append(_len_field(b"\x32", correlation_id.encode()))
        if ack_policy:
            parts.append(b"\x38" + _uvarint(ack_policy))
        if reception_timestamp_ns != self._reception:
            self._reception = reception_timestamp_ns
            self._reception_field = (
                b"\x40" + _uvarint(reception_timestamp_ns) if reception_timestamp_ns else b""
            )
        parts.append(self._reception_field)
        if commit_timestamp_ns != self._commit:
            self._commit = commit_timestamp_ns
            self._commit_field = (
                b"\x48" + _uvarint(commit_timestamp_ns) if commit_timestamp_ns else b""
            )
        parts.append(self._commit_field)
        if ack_error:
            parts.append(b"\x50" + _uvarint(ack_error))
        return b"".join(parts)


# --------------------------------------------------------------------------------------------
# PublishResponse
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishResponseFields:
    """A decoded ``PublishResponse``; ``ack`` / ``async_error_code`` are None when absent."""

    ack: AckFields | None = None
    async_error_code: int | None = None
    async_error_message: str = ""
    correlation_id: str = ""


def encode_publish_response(
    *,
    ack: bytes | None = None,
    async_error_code: int | None = None,
    async_error_message: str = "",
    correlation_id: str = "",
) -> bytes:
    """Encode ``PublishResponse`` bytes.

    ``ack`` is pre-encoded ``Ack`` bytes (e.g. the payload of an ack envelope received from
    NATS, forwarded without re-encoding); ``b""`` sends an empty but present Ack, which PUBA-1
    error responses carry for old clients; None leaves the field out. ``async_error_code`` None
    leaves ``asyncError`` out; any int (UNKNOWN = 0 included) sends it.
    """
    out = b""
    if ack is not None:
        out = _len_field(b"\x0a", ack)
    if async_error_code is not None:
        err = b""
        if async_error_code:
            err = b"\x08" + _uvarint(async_error_code)
        if async_error_message:
            err += _len_field(b"\x12", async_error_message.encode())
        out += _len_field(b"\x12", err)
    if correlation_id:
        out += _len_field(b"\x1a", correlation_id.encode())
    return out


def decode_publish_response(data: bytes) -> PublishResponseFields:
    """Decode ``PublishResponse`` bytes (clients and tests). Repeated embedded messages merge,
    as protobuf requires (their bytes are concatenated before decoding)."""
    ack_parts: list[bytes] | None = None
    err_parts: list[bytes] | None = None
    correlation_id = b""
    pos = 0
    end = len(data)
    buf = data
    try:
        while pos < end:
            t, pos = _varint(buf, pos)
            fn = t >> 3
            wt = t & 7
            if fn == 0 or fn > _FIELD_NUMBER_MAX:
                raise DecodeError("bad field number")
            if wt == 2 and 1 <= fn <= 3:
                n, pos = _varint(buf, pos)
                stop = pos + n
                if stop > end:
                    raise DecodeError("truncated length-delimited field")
                chunk = buf[pos:stop]
                if fn == 1:
                    ack_parts = [*(ack_parts or []), chunk]
                elif fn == 2:
                    err_parts = [*(err_parts or []), chunk]
                else:
                    correlation_id = chunk
                pos = stop
            else:
                pos = _skip(buf, pos, end, wt, fn)
        if pos != end:
            raise DecodeError("field overruns the message")
        ack = decode_ack_proto(b"".join(ack_parts)) if ack_parts is not None else None
        code: int | None = None
        message = ""
        if err_parts is not None:
            code = 0
            for efn, ewt, eval_ in _iter_simple(b"".join(err_parts)):
                if efn == 1 and ewt == 0:
                    code = _int32(eval_)  # type: ignore[arg-type]
                elif efn == 2 and ewt == 2:
                    message = eval_.decode()  # type: ignore[union-attr]
        return PublishResponseFields(ack, code, message, correlation_id.decode())
    except IndexError as exc:
        raise DecodeError("truncated message") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError("string field is not valid UTF-8") from exc


def _iter_simple(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """All (field, wire type, value) of a small message; varints and LEN only, others skipped."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        t, pos = _varint(buf, pos)
        fn = t >> 3
        wt = t & 7
        if fn == 0 or fn > _FIELD_NUMBER_MAX:
            raise DecodeError("bad field number")
        if wt == 0:
            v, pos = _varint(buf, pos)
            out.append((fn, wt, v))
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise DecodeError("truncated length-delimited field")
            out.append((fn, wt, buf[pos : pos + n]))
            pos += n
        else:
            pos = _skip(buf, pos, end, wt, fn)
    if pos != end:
        raise DecodeError("field overruns the message")
    return out


# --------------------------------------------------------------------------------------------
# grpclib pass-through codec
# --------------------------------------------------------------------------------------------


class RawBytes(bytes):
    """Marker type for grpclib: a request or reply that stays as its wire bytes.

    Use it as the request type in a handler's ``grpclib.const.Handler`` (e.g. PublishAsync) and
    :class:`PassthroughCodec` hands the handler the undecoded ``bytes`` (a plain ``bytes``
    object, not a copy). On the reply side any ``bytes`` value is sent as-is.
    """

    __slots__ = ()


GRPC_MESSAGE_BYTES_MAX = 4 * 1024 * 1024
"""gRPC's default receive limit (4 MiB), which Liftbridge keeps (WIRE-5); lb applies it on both
sides, since grpclib has none."""


class PassthroughCodec:
    """A grpclib codec (``grpclib.encoding.base.CodecBase`` interface, duck-typed) that lets
    hot handlers bypass betterproto.

    * encode: ``bytes``/``bytearray``/``memoryview`` (``RawBytes`` included) are sent as
      already-encoded messages; anything else must be an instance of the declared type and is
      serialised by its own ``SerializeToString`` (betterproto and upb messages both have it).
    * decode: when the declared type is ``RawBytes`` or ``bytes``, the raw bytes are returned;
      otherwise ``message_type.FromString(data)``.

    Content subtype ``proto``: on the wire this is plain gRPC+protobuf, so any client works.
    Pass it to ``grpclib.server.Server(handlers, codec=PassthroughCodec())`` (and, if wanted,
    to ``grpclib.client.Channel``). Note grpclib then sets no status-details codec unless one is
    passed explicitly.
    """

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        if isinstance(message, bytearray | memoryview):
            return bytes(message)
        if not isinstance(message, message_type):
            raise TypeError(
                f"Message must be of type {message_type!r} or bytes, not {type(message)!r}"
            )
        return message.SerializeToString()  # type: ignore[no-any-return]

    def decode(self, data: bytes, message_type: Any) -> Any:
        if message_type is RawBytes or message_type is bytes:
            return bytes(data) if type(data) is not bytes else data
        return message_type.FromString(data)
