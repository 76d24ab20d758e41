"""Wire codecs for the replication messages of ``protos/internal.proto``.

Why: a follower's fetch and the leader's answer are encoded and decoded once per fetch on
both sides; through betterproto that was 9-16% of the servers' CPU on RF=3 publishes
(tools/bench P4 profiles), more than reading and appending the batches themselves. These
hand-written codecs produce exactly the bytes betterproto produces for the same values
(fields in number order, proto3 defaults omitted) and read any valid encoding the same way
(unknown fields and fields of an unexpected wire type skipped, the last occurrence wins);
``tests/test_codec_replication_wire.py`` checks both directions against the
``lb._proto.lbinternal`` classes. The ``.proto`` file stays the schema's source of truth.

Messages: ``ReplicationRequest`` / ``ReplicationResponse`` (``<ns>.<stream>.<p>.replicate``)
and ``EpochEndOffsetRequest`` / ``EpochEndOffsetResponse`` (``<ns>.<stream>.<p>.offset``).
Decoders raise :class:`lb.protowire.DecodeError` on malformed bytes, and nothing else.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import NamedTuple

from lb.protowire import DecodeError, decode_varint, encode_varint, skip_field

__all__ = [
    "DecodeError",
    "EpochEndOffsetRequestWire",
    "EpochEndOffsetResponseWire",
    "ReplicationRequestWire",
    "ReplicationResponseWire",
    "decode_epoch_request",
    "decode_epoch_response",
    "decode_replication_request",
    "decode_replication_response",
    "encode_epoch_request",
    "encode_epoch_response",
    "encode_replication_request",
    "encode_replication_response",
]

_MASK64 = (1 << 64) - 1


class ReplicationRequestWire(NamedTuple):
    """``ReplicationRequest``: a follower's fetch from ``offset`` (its LEO)."""

    replica_id: str = ""
    offset: int = 0  # int64
    leader_epoch: int = 0  # uint64


class ReplicationResponseWire(NamedTuple):
    """``ReplicationResponse``: the leader's epoch and HW, and raw record batches."""

    leader_epoch: int = 0  # uint64
    hw: int = 0  # int64
    first_offset: int = 0  # int64
    batches: bytes = b""
    error: str = ""


class EpochEndOffsetRequestWire(NamedTuple):
    """``EpochEndOffsetRequest`` (KIP-101)."""

    replica_id: str = ""
    leader_epoch: int = 0  # uint64
    requested_epoch: int = 0  # int64


class EpochEndOffsetResponseWire(NamedTuple):
    """``EpochEndOffsetResponse`` (KIP-101)."""

    leader_epoch: int = 0  # uint64
    end_offset: int = 0  # int64
    error: str = ""
    epoch: int = 0  # int64
    requested_epoch: int = 0  # int64
    unknown: bool = False


# --------------------------------------------------------------------------------------------
# Encoding: one field per non-default value, in field-number order (as betterproto does)
# --------------------------------------------------------------------------------------------


def _varint_field(tag: bytes, value: int) -> bytes:
    """A varint field (int64/uint64; negative values as 10-byte two's complement)."""
    return tag + encode_varint(value & _MASK64)


def _len_field(tag: bytes, value: bytes) -> bytes:
    return tag + encode_varint(len(value)) + value


def encode_replication_request(replica_id: str, offset: int, leader_epoch: int) -> bytes:
    out = b""
    if replica_id:
        out += _len_field(b"\x0a", replica_id.encode())
    if offset:
        out += _varint_field(b"\x10", offset)
    if leader_epoch:
        out += _varint_field(b"\x18", leader_epoch)
    return out


def encode_replication_response(
    leader_epoch: int, hw: int, first_offset: int, batches: bytes = b"", error: str = ""
) -> bytes:
    """The batches are copied once, into the result (no intermediate message object)."""
    parts = []
    if leader_epoch:
        parts.append(_varint_field(b"\x08", leader_epoch))
    if hw:
        parts.append(_varint_field(b"\x10", hw))
    if first_offset:
        parts.append(_varint_field(b"\x18", first_offset))
    if batches:
        parts.append(b"\x22" + encode_varint(len(batches)))
        parts.append(batches)
    if error:
        parts.append(_len_field(b"\x2a", error.encode()))
    return b"".join(parts)


def encode_epoch_request(replica_id: str, leader_epoch: int, requested_epoch: int) -> bytes:
    out = b""
    if replica_id:
        out += _len_field(b"\x0a", replica_id.encode())
    if leader_epoch:
        out += _varint_field(b"\x10", leader_epoch)
    if requested_epoch:
        out += _varint_field(b"\x18", requested_epoch)
    return out


def encode_epoch_response(
    leader_epoch: int,
    end_offset: int,
    error: str = "",
    epoch: int = 0,
    requested_epoch: int = 0,
    unknown: bool = False,
) -> bytes:
    out = b""
    if leader_epoch:
        out += _varint_field(b"\x08", leader_epoch)
    if end_offset:
        out += _varint_field(b"\x10", end_offset)
    if error:
        out += _len_field(b"\x1a", error.encode())
    if epoch:
        out += _varint_field(b"\x20", epoch)
    if requested_epoch:
        out += _varint_field(b"\x28", requested_epoch)
    if unknown:
        out += b"\x30\x01"
    return out


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_VARINT = 0
_LEN = 2


def _fields(data: bytes, kinds: dict[int, int]) -> dict[int, int | bytes]:
    """The last value of each known field of ``data``: ``kinds`` maps field number to its
    wire type (varint or LEN); other fields, and known ones of another wire type, are skipped.
    Varints come out unsigned (64 bits), LEN fields as bytes."""
    found: dict[int, int | bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = decode_varint(data, pos)
        fn = key >> 3
        wt = key & 7
        if fn == 0:
            raise DecodeError("field number 0")
        kind = kinds.get(fn)
        if kind == wt == _VARINT:
            value, pos = decode_varint(data, pos)
            found[fn] = value & _MASK64
        elif kind == wt == _LEN:
            n, pos = decode_varint(data, pos)
            stop = pos + n
            if stop > end:
                raise DecodeError("truncated length-delimited field")
            found[fn] = data[pos:stop]
            pos = stop
        else:
            pos = skip_field(data, pos, end, wt, fn)
    if pos != end:
        raise DecodeError("field overruns the message")
    return found


def _int64(value: int | bytes) -> int:
    assert isinstance(value, int)
    return value - (1 << 64) if value >= (1 << 63) else value


def _str(value: int | bytes) -> str:
    assert isinstance(value, bytes)
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError("string field is not valid UTF-8") from exc


_REQUEST_KINDS = {1: _LEN, 2: _VARINT, 3: _VARINT}
_RESPONSE_KINDS = {1: _VARINT, 2: _VARINT, 3: _VARINT, 4: _LEN, 5: _LEN}
_EPOCH_RESPONSE_KINDS = {1: _VARINT, 2: _VARINT, 3: _LEN, 4: _VARINT, 5: _VARINT, 6: _VARINT}


def decode_replication_request(data: bytes) -> ReplicationRequestWire:
    f = _fields(data, _REQUEST_KINDS)
    return ReplicationRequestWire(
        _str(f.get(1, b"")), _int64(f.get(2, 0)), f.get(3, 0)  # type: ignore[arg-type]
    )


def decode_replication_response(data: bytes) -> ReplicationResponseWire:
    f = _fields(data, _RESPONSE_KINDS)
    return ReplicationResponseWire(
        f.get(1, 0),  # type: ignore[arg-type]
        _int64(f.get(2, 0)),
        _int64(f.get(3, 0)),
        f.get(4, b""),  # type: ignore[arg-type]
        _str(f.get(5, b"")),
    )


def decode_epoch_request(data: bytes) -> EpochEndOffsetRequestWire:
    f = _fields(data, _REQUEST_KINDS)
    return EpochEndOffsetRequestWire(
        _str(f.get(1, b"")), f.get(2, 0), _int64(f.get(3, 0))  # type: ignore[arg-type]
    )


def decode_epoch_response(data: bytes) -> EpochEndOffsetResponseWire:
    f = _fields(data, _EPOCH_RESPONSE_KINDS)
    return EpochEndOffsetResponseWire(
        f.get(1, 0),  # type: ignore[arg-type]
        _int64(f.get(2, 0)),
        _str(f.get(3, b"")),
        _int64(f.get(4, 0)),
        _int64(f.get(5, 0)),
        bool(f.get(6, 0)),
    )
