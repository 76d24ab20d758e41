"""lb.codec against two independent protobuf implementations: betterproto (lb's typed surface)
and upb (``google.protobuf``, generated from protos/api.proto in a tmp dir).

Property tests show, in both directions, that the fast codec's bytes mean the same messages
to the reference parsers and that it reads their bytes the same way: unicode strings, empty
and large bytes, negative int32/int64 (10-byte varints), header maps, unknown fields.
A real grpclib server and client on 127.0.0.1 exercise PassthroughCodec.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import Any

import betterproto
import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lb import codec
from lb._proto import proto as bp
from lb.codec import (
    AckFields,
    DecodeError,
    MessageFields,
    PassthroughCodec,
    PublishRequestFields,
    RawBytes,
    SubscribeEncoder,
    encode_body,
    message_from_body,
)

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=20)  # full unicode, surrogates excluded by hypothesis
BLOB = st.one_of(
    st.binary(max_size=40),
    st.integers(70_000, 300_000).map(lambda n: bytes(range(256)) * (n // 256)),
)
HEADERS = st.dictionaries(TEXT, st.binary(max_size=20), max_size=5)
POLICY = st.sampled_from([0, 1, 2])  # betterproto turns unknown enum values into None
ACK_ERROR = st.sampled_from([0, 1, 2, 3, 4])

MESSAGES = st.builds(
    MessageFields,
    offset=INT64,
    key=BLOB,
    value=BLOB,
    timestamp_ns=INT64,
    stream=TEXT,
    partition=INT32,
    subject=TEXT,
    reply_subject=TEXT,
    headers=HEADERS,
    ack_inbox=TEXT,
    correlation_id=TEXT,
    ack_policy=POLICY,
)
REQUESTS = st.builds(
    PublishRequestFields,
    key=BLOB,
    value=BLOB,
    stream=TEXT,
    partition=INT32,
    headers=HEADERS,
    ack_inbox=TEXT,
    correlation_id=TEXT,
    ack_policy=POLICY,
    expected_offset=INT64,
)
ACKS = st.builds(
    AckFields,
    stream=TEXT,
    partition_subject=TEXT,
    msg_subject=TEXT,
    offset=INT64,
    ack_inbox=TEXT,
    correlation_id=TEXT,
    ack_policy=POLICY,
    reception_timestamp_ns=INT64,
    commit_timestamp_ns=INT64,
    ack_error=ACK_ERROR,
)


# ------------------------------------------------------------------------------------------
# Conversions between the three representations
# ------------------------------------------------------------------------------------------


def bp_message(m: MessageFields) -> bp.Message:
    return bp.Message(
        offset=m.offset,
        key=m.key,
        value=m.value,
        timestamp=m.timestamp_ns,
        stream=m.stream,
        partition=m.partition,
        subject=m.subject,
        reply_subject=m.reply_subject,
        headers=dict(m.headers),
        ack_inbox=m.ack_inbox,
        correlation_id=m.correlation_id,
        ack_policy=bp.AckPolicy(m.ack_policy),
    )


def from_bp_message(m: bp.Message) -> MessageFields:
    return MessageFields(
        m.offset,
        m.key,
        m.value,
        m.timestamp,
        m.stream,
        m.partition,
        m.subject,
        m.reply_subject,
        dict(m.headers),
        m.ack_inbox,
        m.correlation_id,
        int(m.ack_policy),
    )


def upb_message(pb2: ModuleType, m: MessageFields) -> Any:
    return pb2.Message(
        offset=m.offset,
        key=m.key,
        value=m.value,
        timestamp=m.timestamp_ns,
        stream=m.stream,
        partition=m.partition,
        subject=m.subject,
        replySubject=m.reply_subject,
        headers=m.headers,
        ackInbox=m.ack_inbox,
        correlationId=m.correlation_id,
        ackPolicy=m.ack_policy,
    )


def from_upb_message(m: Any) -> MessageFields:
    return MessageFields(
        m.offset,
        m.key,
        m.value,
        m.timestamp,
        m.stream,
        m.partition,
        m.subject,
        m.replySubject,
        dict(m.headers),
        m.ackInbox,
        m.correlationId,
        m.ackPolicy,
    )


def from_bp_request(r: bp.PublishRequest) -> PublishRequestFields:
    return PublishRequestFields(
        r.key,
        r.value,
        r.stream,
        r.partition,
        dict(r.headers),
        r.ack_inbox,
        r.correlation_id,
        int(r.ack_policy),
        r.expected_offset,
    )


def from_upb_request(r: Any) -> PublishRequestFields:
    return PublishRequestFields(
        r.key,
        r.value,
        r.stream,
        r.partition,
        dict(r.headers),
        r.ackInbox,
        r.correlationId,
        r.ackPolicy,
        r.expectedOffset,
    )


def from_bp_ack(a: bp.Ack) -> AckFields:
    return AckFields(
        a.stream,
        a.partition_subject,
        a.msg_subject,
        a.offset,
        a.ack_inbox,
        a.correlation_id,
        int(a.ack_policy),
        a.reception_timestamp,
        a.commit_timestamp,
        int(a.ack_error),
    )


def from_upb_ack(a: Any) -> AckFields:
    return AckFields(
        a.stream,
        a.partitionSubject,
        a.msgSubject,
        a.offset,
        a.ackInbox,
        a.correlationId,
        a.ackPolicy,
        a.receptionTimestamp,
        a.commitTimestamp,
        a.ackError,
    )


def upb_ack(pb2: ModuleType, a: AckFields) -> Any:
    return pb2.Ack(
        stream=a.stream,
        partitionSubject=a.partition_subject,
        msgSubject=a.msg_subject,
        offset=a.offset,
        ackInbox=a.ack_inbox,
        correlationId=a.correlation_id,
        ackPolicy=a.ack_policy,
        receptionTimestamp=a.reception_timestamp_ns,
        commitTimestamp=a.commit_timestamp_ns,
        ackError=a.ack_error,
    )


def bp_encodable(headers: dict[str, bytes]) -> dict[str, bytes]:
    """betterproto 2.0.0b7 drops a map entry whose key and value are both default
    (``{"": b""}`` encodes to nothing; upb and lb.codec send an empty entry). Expected value of a
    betterproto-encoded map."""
    return {k: v for k, v in headers.items() if k or v}


def without_ack_fields(m: MessageFields) -> MessageFields:
    return MessageFields(
        m.offset,
        m.key,
        m.value,
        m.timestamp_ns,
        m.stream,
        m.partition,
        m.subject,
        m.reply_subject,
        m.headers,
    )


# ------------------------------------------------------------------------------------------
# Message
# ------------------------------------------------------------------------------------------


@SETTINGS
@given(m=MESSAGES)
@example(m=MessageFields())
@example(m=MessageFields(offset=-1, partition=-1, timestamp_ns=-(2**63), ack_policy=2))
def test_message_encode_decode_matches_references(pb2: ModuleType, m: MessageFields) -> None:
    data = codec.encode_message(m)
    assert from_bp_message(bp.Message().parse(data)) == m
    assert from_upb_message(pb2.Message.FromString(data)) == m
    assert codec.decode_message(data) == m
    got = codec.decode_message(bytes(bp_message(m)))
    assert got.headers == bp_encodable(m.headers)
    got.headers = m.headers
    assert got == m
    assert codec.decode_message(upb_message(pb2, m).SerializeToString()) == m


@SETTINGS
@given(m=MESSAGES)
def test_message_from_body_matches_references(pb2: ModuleType, m: MessageFields) -> None:
    body = codec.encode_body(
        m.key,
        m.value,
        m.subject,
        m.reply_subject,
        m.headers,
        m.ack_inbox,
        m.correlation_id,
        m.ack_policy,
    )
    # Subscribe form: ack fields are not delivered (SUB-4).
    data = codec.message_from_body(m.offset, m.timestamp_ns, m.stream, m.partition, body)
    expected = without_ack_fields(m)
    assert from_bp_message(bp.Message().parse(data)) == expected
    assert from_upb_message(pb2.Message.FromString(data)) == expected
    assert codec.decode_message(data) == expected
    # Full form.
    full = codec.message_from_body(
        m.offset, m.timestamp_ns, m.stream, m.partition, body, include_ack_fields=True
    )
    assert from_bp_message(bp.Message().parse(full)) == m
    assert from_upb_message(pb2.Message.FromString(full)) == m


def test_handshake_is_the_empty_message(pb2: ModuleType) -> None:
    """SUB-3: the handshake is an empty Message, i.e. zero bytes on the wire."""
    assert bytes(bp.Message()) == b""
    assert pb2.Message().SerializeToString() == b""
    assert codec.decode_message(b"") == MessageFields()


def test_body_field_order_is_2_3_7_8_9_10_11_12() -> None:
    body = codec.encode_body(b"k", b"v", "s", "r", {"h": b"x"}, "i", "c", 1)
    tags = [fn for fn, _, _ in __import__("lb.protowire").protowire.iter_fields(body)]
    assert tags == [2, 3, 7, 8, 9, 10, 11, 12]


@SETTINGS
@given(unknown=st.lists(st.sampled_from(["varint", "i64", "i32", "len", "group"]), max_size=6))
def test_unknown_fields_and_wrong_wire_types_are_skipped(
    pb2: ModuleType, unknown: list[str]
) -> None:
    """Unknown fields (all wire types, groups too) and known fields with an unexpected wire
    type are skipped, as upb does."""
    m = MessageFields(offset=7, key=b"k", value=b"v", headers={"a": b"b"}, ack_policy=1)
    extra = b""
    for kind in unknown:
        extra += {
            "varint": b"\xa8\x06\x96\x01",  # field 101 varint
            "i64": b"\xa9\x06" + b"\x01" * 8,  # field 101 fixed64
            "i32": b"\xad\x06" + b"\x02" * 4,  # field 101 fixed32
            "len": b"\xaa\x06\x03abc",  # field 101 bytes
            "group": b"\xab\x06\x08\x01\xac\x06",  # field 101 group {1: 1}
        }[kind]
    # Field 2 (key, bytes) sent as a varint and field 1 (offset, varint) sent as bytes: unknown.
    data = extra + codec.encode_message(m) + extra + b"\x10\x05" + b"\x0a\x01z"
    ref = pb2.Message.FromString(data)
    assert from_upb_message(ref) == m
    assert codec.decode_message(data) == m


@SETTINGS
@given(data=st.binary(max_size=60))
def test_message_decode_fuzz_agrees_with_upb(pb2: ModuleType, data: bytes) -> None:
    """On arbitrary bytes the fast decoder either raises DecodeError or agrees with upb; and
    whenever upb accepts the bytes, so does it."""
    try:
        ref = from_upb_message(pb2.Message.FromString(data))
    except Exception:
        ref = None
    try:
        got: MessageFields | None = codec.decode_message(data)
    except DecodeError:
        got = None
    if ref is not None:
        assert got == ref
    else:
        assert got is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x12",  # tag without length
        b"\x12\x05ab",  # length beyond the end
        b"\x08",  # truncated varint
        b"\x08" + b"\xff" * 11,  # over-long varint
        b"\x00\x00",  # field number 0
        b"\x0f",  # wire type 7
        b"\x2a\x02\xc3\x28",  # stream with invalid UTF-8
        b"\x4a\x03\x0a\x01\xff",  # header key with invalid UTF-8
        # A string field repeated: an invalid earlier occurrence is an error, as in Go.
        b"\x5a\x01\x80\x5a\x00",  # correlationId
        b"\x2a\x01\x80\x2a\x01a",  # stream
        b"\x4a\x06\x0a\x01\xff\x0a\x01a",  # a header entry's key
        b"\xab\x06\x08\x01",  # unterminated group
        b"\x0c",  # stray end-group
    ],
)
def test_malformed_messages_raise_decode_error(pb2: ModuleType, data: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode_message(data)
    with pytest.raises(Exception):  # noqa: B017 - upb agrees they are invalid
        pb2.Message.FromString(data)


# ------------------------------------------------------------------------------------------
# PublishRequest
# ------------------------------------------------------------------------------------------


@SETTINGS
@given(r=REQUESTS)
@example(r=PublishRequestFields(partition=-1, expected_offset=-1))
def test_publish_request_matches_references(pb2: ModuleType, r: PublishRequestFields) -> None:
    bp_req = bp.PublishRequest(
        key=r.key,
        value=r.value,
        stream=r.stream,
        partition=r.partition,
        headers=dict(r.headers),
        ack_inbox=r.ack_inbox,
        correlation_id=r.correlation_id,
        ack_policy=bp.AckPolicy(r.ack_policy),
        expected_offset=r.expected_offset,
    )
    upb_req = pb2.PublishRequest(
        key=r.key,
        value=r.value,
        stream=r.stream,
        partition=r.partition,
        headers=r.headers,
        ackInbox=r.ack_inbox,
        correlationId=r.correlation_id,
        ackPolicy=r.ack_policy,
        expectedOffset=r.expected_offset,
    )
    got = codec.decode_publish_request(bytes(bp_req))
    assert got.headers == bp_encodable(r.headers)
    got.headers = r.headers
    assert got == r
    assert codec.decode_publish_request(upb_req.SerializeToString()) == r
    mine = codec.encode_publish_request(r)
    assert from_bp_request(bp.PublishRequest().parse(mine)) == r
    assert from_upb_request(pb2.PublishRequest.FromString(mine)) == r


def test_negative_partition_is_a_ten_byte_varint() -> None:
    data = codec.encode_publish_request(PublishRequestFields(partition=-1))
    assert data == b"\x20" + b"\xff" * 9 + b"\x01"
    assert codec.decode_publish_request(data).partition == -1
    # An int32 written by a sloppy encoder as a 5-byte varint still reads as -1.
    assert codec.decode_publish_request(b"\x20\xff\xff\xff\xff\x0f").partition == -1


def test_unknown_enum_values_survive(pb2: ModuleType) -> None:
    """proto3 enums are open: upb keeps unknown values and so does the fast codec."""
    data = codec.encode_publish_request(PublishRequestFields(ack_policy=7))
    assert pb2.PublishRequest.FromString(data).ackPolicy == 7
    assert codec.decode_publish_request(data).ack_policy == 7
    ack = codec.encode_ack_proto(ack_error=-3)
    assert pb2.Ack.FromString(ack).ackError == -3
    assert codec.decode_ack_proto(ack).ack_error == -3


@SETTINGS
@given(data=st.binary(max_size=60))
@example(data=b"\x1a\x01\x80\x1a\x00")  # stream twice, the first not UTF-8
@example(data=b"\x3a\x01\x80\x3a\x01c")  # correlationId twice
def test_publish_request_decode_fuzz_agrees_with_upb(pb2: ModuleType, data: bytes) -> None:
    try:
        ref = from_upb_request(pb2.PublishRequest.FromString(data))
    except Exception:
        ref = None
    try:
        got: PublishRequestFields | None = codec.decode_publish_request(data)
    except DecodeError:
        got = None
    assert got == ref


# ------------------------------------------------------------------------------------------
# Ack and PublishResponse
# ------------------------------------------------------------------------------------------


@SETTINGS
@given(a=ACKS)
@example(a=AckFields())
@example(a=AckFields(offset=-1, ack_error=3))
def test_ack_matches_references(pb2: ModuleType, a: AckFields) -> None:
    data = a.to_bytes()
    assert from_bp_ack(bp.Ack().parse(data)) == a
    assert from_upb_ack(pb2.Ack.FromString(data)) == a
    assert codec.decode_ack_proto(data) == a
    assert codec.decode_ack_proto(bytes(bp.Ack().parse(data))) == a
    assert codec.decode_ack_proto(upb_ack(pb2, a).SerializeToString()) == a


@SETTINGS
@given(
    ack=st.one_of(st.none(), ACKS),
    err=st.one_of(st.none(), st.tuples(st.integers(0, 7), TEXT)),
    cid=TEXT,
)
@example(ack=AckFields(), err=(1, "no such stream: x"), cid="c1")
def test_publish_response_matches_references(
    pb2: ModuleType, ack: AckFields | None, err: tuple[int, str] | None, cid: str
) -> None:
    data = codec.encode_publish_response(
        ack=None if ack is None else ack.to_bytes(),
        async_error_code=None if err is None else err[0],
        async_error_message="" if err is None else err[1],
        correlation_id=cid,
    )
    # betterproto
    resp = bp.PublishResponse().parse(data)
    assert betterproto.serialized_on_wire(resp.ack) == (ack is not None)
    if ack is not None:
        assert from_bp_ack(resp.ack) == ack
    assert betterproto.serialized_on_wire(resp.async_error) == (err is not None)
    if err is not None:
        assert (int(resp.async_error.code), resp.async_error.message) == err
    assert resp.correlation_id == cid
    # upb
    ref = pb2.PublishResponse.FromString(data)
    assert ref.HasField("ack") == (ack is not None)
    if ack is not None:
        assert from_upb_ack(ref.ack) == ack
    assert ref.HasField("asyncError") == (err is not None)
    if err is not None:
        assert (ref.asyncError.code, ref.asyncError.message) == err
    assert ref.correlationId == cid
    # round trip through the fast decoder, from both encoders
    for raw in (data, ref.SerializeToString(), bytes(resp)):
        got = codec.decode_publish_response(raw)
        assert got.ack == ack
        assert (
            None
            if got.async_error_code is None
            else (got.async_error_code, got.async_error_message)
        ) == err
        assert got.correlation_id == cid


def test_publish_response_empty_ack_is_present(pb2: ModuleType) -> None:
    """PUBA-1: error responses carry an empty Ack for old clients; it must be on the wire."""
    data = codec.encode_publish_response(
        ack=b"", async_error_code=codec.PublishAsyncErrorCode.NOT_FOUND, correlation_id="x"
    )
    assert pb2.PublishResponse.FromString(data).HasField("ack")
    assert codec.decode_publish_response(data).ack == AckFields()


def test_repeated_embedded_messages_merge(pb2: ModuleType) -> None:
    a1 = codec.encode_ack_proto(stream="s", offset=4)
    a2 = codec.encode_ack_proto(correlation_id="c", offset=5)
    data = codec.encode_publish_response(ack=a1) + codec.encode_publish_response(ack=a2)
    ref = from_upb_ack(pb2.PublishResponse.FromString(data).ack)
    assert ref == AckFields(stream="s", correlation_id="c", offset=5)
    assert codec.decode_publish_response(data).ack == ref


# ------------------------------------------------------------------------------------------
# PassthroughCodec over a real grpclib server and client
# ------------------------------------------------------------------------------------------


class _RawService:
    """A tiny service on the real API method paths: Subscribe streams pre-encoded Message
    bytes; PublishAsync receives undecoded request bytes and answers with pre-encoded
    responses; FetchCursor stays a normal betterproto handler."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.raw_requests: list[bytes] = []

    async def subscribe(self, stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        assert isinstance(request, bp.SubscribeRequest)
        await stream.send_message(b"")  # handshake (SUB-3)
        for i, body in enumerate(self.bodies):
            await stream.send_message(
                codec.message_from_body(i, 1_700_000_000_000_000_000 + i, "s", 1, body)
            )

    async def publish_async(self, stream: Stream[Any, Any]) -> None:
        async for raw in stream:
            assert type(raw) is bytes
            self.raw_requests.append(raw)
            req = codec.decode_publish_request(raw)
            ack = codec.encode_ack_proto(stream=req.stream, correlation_id=req.correlation_id)
            await stream.send_message(
                codec.encode_publish_response(ack=ack, correlation_id=req.correlation_id)
            )

    async def fetch_cursor(self, stream: Stream[Any, Any]) -> None:
        request = await stream.recv_message()
        await stream.send_message(bp.FetchCursorResponse(offset=len(request.cursor_id)))

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/proto.API/Subscribe": Handler(
                self.subscribe, Cardinality.UNARY_STREAM, bp.SubscribeRequest, bp.Message
            ),
            "/proto.API/PublishAsync": Handler(
                self.publish_async, Cardinality.STREAM_STREAM, RawBytes, bp.PublishResponse
            ),
            "/proto.API/FetchCursor": Handler(
                self.fetch_cursor,
                Cardinality.UNARY_UNARY,
                bp.FetchCursorRequest,
                bp.FetchCursorResponse,
            ),
        }


def test_passthrough_codec_over_grpclib() -> None:
    messages = [
        MessageFields(
            offset=i,
            key=f"k{i}".encode(),
            value=bytes([i]) * (i * 100),
            timestamp_ns=1_700_000_000_000_000_000 + i,
            stream="s",
            partition=1,
            subject="foo.1",
            reply_subject="",
            headers={"subject": b"foo.1", "reply": b"", "ü": b"\x00"},
        )
        for i in range(50)
    ]
    bodies = [
        codec.encode_body(
            m.key, m.value, m.subject, m.reply_subject, m.headers, "inbox", f"c{m.offset}", 1
        )
        for m in messages
    ]
    service = _RawService(bodies)

    async def main() -> None:
        server = Server([service], codec=PassthroughCodec())
        await server.start("127.0.0.1", 0)
        port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        channel = Channel("127.0.0.1", port)  # default ProtoCodec: plain betterproto client
        try:
            stub = bp.ApiStub(channel)
            got = [m async for m in stub.subscribe(bp.SubscribeRequest(stream="s", partition=1))]
            assert got[0] == bp.Message()  # handshake
            assert [from_bp_message(m) for m in got[1:]] == messages

            requests = [
                bp.PublishRequest(stream="s", value=b"v" * i, correlation_id=str(i))
                for i in range(20)
            ]
            responses = [r async for r in stub.publish_async(requests)]
            assert [r.correlation_id for r in responses] == [str(i) for i in range(20)]
            assert all(r.ack.stream == "s" for r in responses)
            assert service.raw_requests == [bytes(r) for r in requests]

            resp = await asyncio.wait_for(
                stub.fetch_cursor(bp.FetchCursorRequest(cursor_id="abcd")), 10
            )
            assert resp.offset == 4

            # A fast client: the same codec on the channel, replies kept as raw bytes and
            # decoded with lb.codec.
            fast_channel = Channel("127.0.0.1", port, codec=PassthroughCodec())
            try:
                async with fast_channel.request(
                    "/proto.API/Subscribe",
                    Cardinality.UNARY_STREAM,
                    bp.SubscribeRequest,
                    RawBytes,
                ) as call:
                    await call.send_message(bp.SubscribeRequest(stream="s"), end=True)
                    raws = [r async for r in call]
                assert raws[0] == b""
                assert [codec.decode_message(r) for r in raws[1:]] == messages
            finally:
                fast_channel.close()
        finally:
            channel.close()
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_passthrough_codec_unit() -> None:
    c = PassthroughCodec()
    assert c.encode(b"\x08\x01", bp.Message) == b"\x08\x01"
    assert c.encode(bytearray(b"\x08\x01"), bp.Message) == b"\x08\x01"
    assert c.encode(bp.Message(offset=1), bp.Message) == b"\x08\x01"
    with pytest.raises(TypeError):
        c.encode(bp.Ack(), bp.Message)
    assert c.decode(b"\x08\x01", RawBytes) == b"\x08\x01"
    assert c.decode(b"\x08\x01", bp.Message) == bp.Message(offset=1)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**62),
            st.sampled_from([0, 1, 1_700_000_000_123_456_789, 1_700_000_000_123_456_790]),
            st.binary(max_size=40),
            st.text(max_size=8),
        ),
        max_size=8,
    ),
    st.text(max_size=10),
    st.integers(0, 1000),
)
def test_subscribe_encoder_equals_message_from_body(records, stream, partition) -> None:  # type: ignore[no-untyped-def]
    """The per-subscription encoder's reuse never changes a byte."""
    enc = SubscribeEncoder(stream, partition)
    for offset, ts, value, inbox in records:
        body = encode_body(b"k", value, "subj", "", {"h": b"v"}, inbox, "c", 1)
        expected = message_from_body(offset, ts, stream, partition, body)
        assert enc.encode(offset, ts, body) == expected
