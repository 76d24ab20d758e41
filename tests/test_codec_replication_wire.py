"""lb.replication.wire against betterproto (``lb._proto.lbinternal``), in both directions.

The replication messages must keep their wire bytes: encoders are byte-identical to
betterproto's ``bytes(message)``, and decoders read betterproto's bytes (with unknown fields
mixed in) to the same values betterproto reads.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb._proto import lbinternal as pb
from lb.protowire import encode_varint
from lb.replication import wire

INT64 = st.sampled_from([0, -1, 1, 127, 128, 2**40]) | st.integers(-(2**63), 2**63 - 1)
UINT64 = st.sampled_from([0, 1, 127, 128, 2**40]) | st.integers(0, 2**64 - 1)
TEXT = st.text(max_size=20)
BATCHES = st.one_of(
    st.binary(max_size=64),
    st.integers(70_000, 200_000).map(lambda n: bytes(range(256)) * (n // 256)),
)
SETTINGS = settings(max_examples=200, deadline=None)


def _unknown_field(number: int, wire_type: int, payload: bytes) -> bytes:
    key = encode_varint((number << 3) | wire_type)
    if wire_type == 0:
        return key + encode_varint(int.from_bytes(payload[:8] or b"\0", "little"))
    if wire_type == 1:
        return key + payload[:8].ljust(8, b"\0")
    if wire_type == 5:
        return key + payload[:4].ljust(4, b"\0")
    return key + encode_varint(len(payload)) + payload


UNKNOWN = st.lists(
    st.tuples(st.integers(7, 2000), st.sampled_from([0, 1, 2, 5]), st.binary(max_size=12)).map(
        lambda t: _unknown_field(*t)
    ),
    max_size=3,
)


@SETTINGS
@given(replica_id=TEXT, offset=INT64, leader_epoch=UINT64, unknown=UNKNOWN)
def test_replication_request(
    replica_id: str, offset: int, leader_epoch: int, unknown: list[bytes]
) -> None:
    ref = pb.ReplicationRequest(replica_id=replica_id, offset=offset, leader_epoch=leader_epoch)
    data = wire.encode_replication_request(replica_id, offset, leader_epoch)
    assert data == bytes(ref)
    assert pb.ReplicationRequest().parse(data) == ref
    got = wire.decode_replication_request(b"".join(unknown) + bytes(ref))
    assert got == (replica_id, offset, leader_epoch)


@SETTINGS
@given(
    leader_epoch=UINT64,
    hw=INT64,
    first_offset=INT64,
    batches=BATCHES,
    error=st.sampled_from(["", "stale_epoch", "offset_ahead"]) | TEXT,
    unknown=UNKNOWN,
)
def test_replication_response(
    leader_epoch: int, hw: int, first_offset: int, batches: bytes, error: str, unknown: list[bytes]
) -> None:
    ref = pb.ReplicationResponse(
        leader_epoch=leader_epoch, hw=hw, first_offset=first_offset, batches=batches, error=error
    )
    data = wire.encode_replication_response(leader_epoch, hw, first_offset, batches, error)
    assert data == bytes(ref)
    mixed = bytes(ref) + b"".join(unknown)
    got = wire.decode_replication_response(mixed)
    back = pb.ReplicationResponse().parse(mixed)
    assert got == (back.leader_epoch, back.hw, back.first_offset, back.batches, back.error)
    assert got == (leader_epoch, hw, first_offset, batches, error)


@SETTINGS
@given(replica_id=TEXT, leader_epoch=UINT64, requested_epoch=INT64, unknown=UNKNOWN)
def test_epoch_request(
    replica_id: str, leader_epoch: int, requested_epoch: int, unknown: list[bytes]
) -> None:
    ref = pb.EpochEndOffsetRequest(
        replica_id=replica_id, leader_epoch=leader_epoch, requested_epoch=requested_epoch
    )
    data = wire.encode_epoch_request(replica_id, leader_epoch, requested_epoch)
    assert data == bytes(ref)
    got = wire.decode_epoch_request(b"".join(unknown) + data)
    assert got == (replica_id, leader_epoch, requested_epoch)


@SETTINGS
@given(
    leader_epoch=UINT64,
    end_offset=INT64,
    error=TEXT,
    epoch=INT64,
    requested_epoch=INT64,
    unknown_epoch=st.booleans(),
    unknown=UNKNOWN,
)
def test_epoch_response(
    leader_epoch: int,
    end_offset: int,
    error: str,
    epoch: int,
    requested_epoch: int,
    unknown_epoch: bool,
    unknown: list[bytes],
) -> None:
    ref = pb.EpochEndOffsetResponse(
        leader_epoch=leader_epoch,
        end_offset=end_offset,
        error=error,
        epoch=epoch,
        requested_epoch=requested_epoch,
        unknown=unknown_epoch,
    )
    data = wire.encode_epoch_response(
        leader_epoch, end_offset, error, epoch, requested_epoch, unknown_epoch
    )
    assert data == bytes(ref)
    got = wire.decode_epoch_response(data + b"".join(unknown))
    assert got == (leader_epoch, end_offset, error, epoch, requested_epoch, unknown_epoch)


def test_last_occurrence_wins_and_wrong_wire_types_are_skipped() -> None:
    data = (
        bytes(pb.ReplicationRequest(replica_id="a", offset=5, leader_epoch=1))
        + bytes(pb.ReplicationRequest(replica_id="b", offset=7))
        + b"\x1d\x01\x02\x03\x04"  # field 3 as fixed32: not the uint64 it should be
    )
    assert wire.decode_replication_request(data) == ("b", 7, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05ab",  # truncated string
        b"\x10",  # truncated varint
        b"\x0a\x01\xff",  # not UTF-8
        b"\x00\x01",  # field number 0
        b"\x22\x80",  # truncated length
        b"\x0f",  # wire type 7
        b"\x3b\x08\x01",  # unterminated group
    ],
)
def test_malformed_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(wire.DecodeError):
        wire.decode_replication_request(data)
    for decode in (
        wire.decode_replication_response,
        wire.decode_epoch_request,
        wire.decode_epoch_response,
    ):
        # A field of another message's type may be skipped instead; no other exception.
        with contextlib.suppress(wire.DecodeError):
            decode(data)


def test_empty_messages() -> None:
    assert wire.encode_replication_response(0, 0, 0) == b""
    assert wire.decode_replication_response(b"") == wire.ReplicationResponseWire()
    assert wire.decode_epoch_response(b"") == wire.EpochEndOffsetResponseWire()
