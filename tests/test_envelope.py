"""lb.envelope: Liftbridge envelope layout (ENV-1..7), ingest rules (ENV-3..5, OCC-2) and acks
(ACK-2, ACK-4).

Envelopes here are built by hand from the documented layout, with payloads from the upb
protobuf runtime (``api_pb2`` generated from protos/api.proto), so the tests do not trust the
code under test to build its own input.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import crc32c
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from lb import codec, envelope
from lb._proto import proto as bp
from lb.envelope import IngestMessage, MsgType, parse_published

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

MAGIC = bytes([0xB9, 0x0E, 0x43, 0xB4])


def hand_envelope(
    payload: bytes,
    *,
    msg_type: int = 0,
    crc: bool = False,
    version: int = 0,
    header_len: int | None = None,
    flags: int | None = None,
    crc_value: int | None = None,
) -> bytes:
    """An envelope from the documented layout, byte by byte."""
    if header_len is None:
        header_len = 12 if crc else 8
    if flags is None:
        flags = 1 if crc else 0
    head = MAGIC + bytes([version, header_len, flags, msg_type])
    if crc:
        value = crc32c.crc32c(payload) if crc_value is None else crc_value
        head += value.to_bytes(4, "big")
    head += b"\x00" * (header_len - len(head))  # padding when HeaderLen > 8 without CRC
    return head + payload


def raw(data: bytes, subject: str = "foo", reply: str = "") -> IngestMessage:
    """What ENV-4 says a non-envelope message becomes."""
    return IngestMessage(
        value=data,
        key=b"",
        headers={"subject": subject.encode(), "reply": reply.encode()},
        subject=subject,
        reply_subject=reply,
        correlation_id="",
        ack_inbox="",
        ack_policy=0,
        expected_offset=0,
    )


def upb_publish_payload(pb2: ModuleType) -> bytes:
    return pb2.Message(
        offset=41,
        key=b"key-\x00\xff",
        value=b"value \xe2\x82\xac",
        headers={"user": b"h1", "empty": b"", "ünï": b"\x01\x02"},
        ackInbox="my.inbox",
        correlationId="corr-1",
        ackPolicy=pb2.ALL,
        # Ignored on ingest: the server sets these itself.
        subject="ignored",
        replySubject="ignored",
        stream="ignored",
        partition=9,
        timestamp=123,
    ).SerializeToString()


# ------------------------------------------------------------------------------------------
# Valid envelopes (ENV-1, ENV-2, ENV-3)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["plain", "crc", "long-header"])
def test_hand_built_publish_envelope(pb2: ModuleType, form: str) -> None:
    payload = upb_publish_payload(pb2)
    if form == "plain":
        data = hand_envelope(payload)
    elif form == "crc":
        data = hand_envelope(payload, crc=True)
        assert data[:12] == (
            b"\xb9\x0e\x43\xb4\x00\x0c\x01\x00" + crc32c.crc32c(payload).to_bytes(4, "big")
        )
    else:
        # HeaderLen is the payload offset; Liftbridge accepts a longer header without CRC.
        data = hand_envelope(payload, header_len=10)
    assert envelope.decode_envelope(data) == (0, payload)
    got = parse_published(data, "foo.1", "_INBOX.r")
    assert got == IngestMessage(
        value=b"value \xe2\x82\xac",
        key=b"key-\x00\xff",
        headers={
            "user": b"h1",
            "empty": b"",
            "ünï": b"\x01\x02",
            "subject": b"foo.1",
            "reply": b"_INBOX.r",
        },
        subject="foo.1",
        reply_subject="_INBOX.r",
        correlation_id="corr-1",
        ack_inbox="my.inbox",
        ack_policy=1,
        expected_offset=41,
    )


def test_stored_body_reads_back_as_message(pb2: ModuleType) -> None:
    """The record body the leader stores becomes, with offset/timestamp/stream/partition, the
    Message a subscriber sees (SUB-4: no ack fields; ENV-5: subject and reply from the NATS
    message)."""
    got = parse_published(hand_envelope(upb_publish_payload(pb2)), "foo.1", "_INBOX.r")
    data = codec.message_from_body(5, 1_700_000_000_123_456_789, "s", 1, got.encode_body())
    m = pb2.Message.FromString(data)
    assert (m.offset, m.timestamp, m.stream, m.partition) == (5, 1_700_000_000_123_456_789, "s", 1)
    assert (m.key, m.value) == (b"key-\x00\xff", b"value \xe2\x82\xac")
    assert (m.subject, m.replySubject) == ("foo.1", "_INBOX.r")
    assert dict(m.headers) == got.headers
    assert (m.ackInbox, m.correlationId, m.ackPolicy) == ("", "", 0)
    b = bp.Message().parse(data)
    assert (b.subject, b.reply_subject, b.headers) == ("foo.1", "_INBOX.r", got.headers)


def test_empty_publish_payload_is_a_valid_empty_message() -> None:
    got = parse_published(hand_envelope(b""), "foo", "")
    assert got == IngestMessage(
        value=b"",
        key=b"",
        headers={"subject": b"foo", "reply": b""},
        subject="foo",
        reply_subject="",
        correlation_id="",
        ack_inbox="",
        ack_policy=0,
        expected_offset=0,
    )


# ------------------------------------------------------------------------------------------
# Invalid envelopes are stored verbatim (ENV-4, ENV-7, OCC-2)
# ------------------------------------------------------------------------------------------


def _invalid_cases(payload: bytes) -> dict[str, bytes]:
    good = hand_envelope(payload, crc=True)
    return {
        "empty": b"",
        "plain text": b"hello world",
        "magic only": MAGIC,
        "short header": MAGIC + b"\x00\x08\x00",
        "near-miss magic": b"\xb9\x0e\x43\xb5" + good[4:],
        "version 1": hand_envelope(payload, version=1),
        "version 255": hand_envelope(payload, version=255),
        "header len 0": MAGIC + b"\x00\x00\x00\x00" + payload,
        "header len 7": MAGIC + b"\x00\x07\x00\x00" + payload,
        "header len beyond data (ENV-7)": MAGIC + b"\x00\xff\x00\x00" + b"\x08\x01",
        "header len one past end": MAGIC + b"\x00\x09\x00\x00",
        "crc flag, header len 8": hand_envelope(payload, header_len=8, flags=1),
        "crc flag, header len 16": hand_envelope(payload, crc=True, header_len=16),
        "crc mismatch": hand_envelope(payload, crc=True, crc_value=crc32c.crc32c(payload) ^ 1),
        "crc over flipped payload": good[:-1] + bytes([good[-1] ^ 0x40]),
        "truncated crc header": good[:10],
        "ack type": hand_envelope(payload, msg_type=MsgType.ACK),
        **{f"internal type {t}": hand_envelope(payload, msg_type=t) for t in range(2, 15)},
        "type 255": hand_envelope(payload, msg_type=255),
        "truncated protobuf": hand_envelope(payload[:-3]),
        "bad wire type": hand_envelope(b"\x0f\x00"),
        "field number 0": hand_envelope(b"\x00\x01"),
        "length overrun": hand_envelope(b"\x1a\x7f" + b"v" * 10),
        "invalid utf-8 ackInbox": hand_envelope(b"\x52\x02\xc3\x28"),
        "invalid utf-8 header key": hand_envelope(b"\x4a\x04\x0a\x02\xff\xfe"),
    }


def test_invalid_envelopes_are_stored_verbatim(pb2: ModuleType) -> None:
    payload = upb_publish_payload(pb2)
    for name, data in _invalid_cases(payload).items():
        got = parse_published(data, "foo.2", "r")
        assert got == raw(data, "foo.2", "r"), name
        assert got.value is data or got.value == data, name
        if name.startswith(("ack type", "internal", "type 255", "truncated protobuf")):
            continue  # valid envelopes of another type, or bad protobuf in a valid one
        if name in {"bad wire type", "field number 0", "length overrun"}:
            continue
        if name.startswith("invalid utf-8"):
            continue
        assert envelope.decode_envelope(data) is None, name


def test_invalid_protobuf_matches_upb_rejection(pb2: ModuleType) -> None:
    """The 'unparsable protobuf' cases are ones upb rejects too."""
    for payload in (b"\x0f\x00", b"\x00\x01", b"\x1a\x7fvv", b"\x52\x02\xc3\x28"):
        with pytest.raises(Exception):  # noqa: B017
            pb2.Message.FromString(payload)
        assert parse_published(hand_envelope(payload), "a", "") == raw(hand_envelope(payload), "a")


# ------------------------------------------------------------------------------------------
# Server headers (ENV-5)
# ------------------------------------------------------------------------------------------


def test_server_headers_overwrite_user_headers(pb2: ModuleType) -> None:
    payload = pb2.Message(
        value=b"v", headers={"subject": b"spoofed", "reply": b"spoofed", "other": b"kept"}
    ).SerializeToString()
    got = parse_published(hand_envelope(payload), "real.subject", "")
    assert got.headers == {"subject": b"real.subject", "reply": b"", "other": b"kept"}
    assert (got.subject, got.reply_subject) == ("real.subject", "")


def test_raw_message_gets_server_headers() -> None:
    got = parse_published(b"raw bytes", "s.1", "_INBOX.x")
    assert got.headers == {"subject": b"s.1", "reply": b"_INBOX.x"}
    assert got.expected_offset == 0  # OCC-2
    m = codec.decode_message(codec.message_from_body(0, 1, "", 0, got.encode_body()))
    assert (m.value, m.subject, m.reply_subject) == (b"raw bytes", "s.1", "_INBOX.x")


def test_unicode_subjects() -> None:
    got = parse_published(b"x", "naïve.😀", "ré")
    assert got.headers == {"subject": "naïve.😀".encode(), "reply": "ré".encode()}
    m = codec.decode_message(got.encode_body())
    assert (m.subject, m.reply_subject) == ("naïve.😀", "ré")


# ------------------------------------------------------------------------------------------
# Envelopes the server produces (ENV-6), acks (ACK-2, ACK-4), API publishes (PUB-1)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("msg_type", [0, 1, 5, 14])
@pytest.mark.parametrize("crc", [False, True])
def test_encode_envelope_matches_layout(msg_type: int, crc: bool) -> None:
    payload = b"\x08\x01payload"
    data = envelope.encode_envelope(msg_type, payload, crc=crc)
    assert data == hand_envelope(payload, msg_type=msg_type, crc=crc)
    assert envelope.decode_envelope(data) == (msg_type, payload)


def test_ack_envelope(pb2: ModuleType) -> None:
    fields: dict[str, Any] = dict(
        stream="s",
        partition_subject="foo",
        msg_subject="foo.1",
        offset=17,
        ack_inbox="inbox",
        correlation_id="c",
        ack_policy=1,
        reception_timestamp_ns=1_700_000_000_000_000_001,
        commit_timestamp_ns=1_700_000_000_000_000_002,
        ack_error=0,
    )
    data = envelope.encode_ack(**fields)
    assert data[:8] == MAGIC + b"\x00\x08\x00\x01"  # ENV-6 header, MsgType 1 (ACK-4)
    ref = pb2.Ack.FromString(data[8:])
    assert (ref.stream, ref.partitionSubject, ref.msgSubject, ref.offset) == (
        "s",
        "foo",
        "foo.1",
        17,
    )
    assert (ref.ackInbox, ref.correlationId, ref.ackPolicy) == ("inbox", "c", 1)
    assert (ref.receptionTimestamp, ref.commitTimestamp, ref.ackError) == (
        1_700_000_000_000_000_001,
        1_700_000_000_000_000_002,
        0,
    )
    assert envelope.decode_ack(data) == codec.AckFields(**fields)
    # An ack from another implementation, with a CRC.
    other = pb2.Ack(stream="t", offset=-1, ackError=pb2.Ack.TOO_LARGE).SerializeToString()
    assert envelope.decode_ack(hand_envelope(other, msg_type=1, crc=True)) == codec.AckFields(
        stream="t", offset=-1, ack_error=3
    )
    # Not an ack.
    assert envelope.decode_ack(hand_envelope(other, msg_type=0)) is None
    assert envelope.decode_ack(b"junk") is None
    assert envelope.decode_ack(hand_envelope(b"\x0f", msg_type=1)) is None
    # A Publish envelope with an Ack inside is stored raw, like any other wrong MsgType.
    assert parse_published(data, "x", "") == raw(data, "x")


def test_encode_publish_is_read_by_upb(pb2: ModuleType) -> None:
    data = envelope.encode_publish(
        key=b"k",
        value=b"v",
        headers={"h": b"1"},
        ack_inbox="i",
        correlation_id="c",
        ack_policy=2,
        expected_offset=-1,
    )
    assert data[:8] == MAGIC + b"\x00\x08\x00\x00"
    m = pb2.Message.FromString(data[8:])
    assert (m.key, m.value, dict(m.headers)) == (b"k", b"v", {"h": b"1"})
    assert (m.ackInbox, m.correlationId, m.ackPolicy, m.offset) == ("i", "c", 2, -1)
    assert (m.subject, m.replySubject, m.stream, m.timestamp) == ("", "", "", 0)


HEADERS = st.dictionaries(st.text(max_size=8), st.binary(max_size=8), max_size=4)


@SETTINGS
@given(
    key=st.binary(max_size=30),
    value=st.one_of(st.binary(max_size=50), st.just(b"\xb9\x0e\x43\xb4" * 1000)),
    headers=HEADERS,
    ack_inbox=st.text(max_size=10),
    correlation_id=st.text(max_size=10),
    ack_policy=st.integers(-(2**31), 2**31 - 1),
    expected_offset=st.integers(-(2**63), 2**63 - 1),
    subject=st.text(min_size=1, max_size=10),
    reply=st.text(max_size=10),
    crc=st.booleans(),
)
def test_publish_round_trip(
    key: bytes,
    value: bytes,
    headers: dict[str, bytes],
    ack_inbox: str,
    correlation_id: str,
    ack_policy: int,
    expected_offset: int,
    subject: str,
    reply: str,
    crc: bool,
) -> None:
    data = envelope.encode_publish(
        key, value, headers, ack_inbox, correlation_id, ack_policy, expected_offset
    )
    if crc:  # re-wrap the same payload with a CRC, as a client may
        data = envelope.encode_envelope(0, data[8:], crc=True)
    got = parse_published(data, subject, reply)
    assert got == IngestMessage(
        value=value,
        key=key,
        headers={**headers, "subject": subject.encode(), "reply": reply.encode()},
        subject=subject,
        reply_subject=reply,
        correlation_id=correlation_id,
        ack_inbox=ack_inbox,
        ack_policy=ack_policy,
        expected_offset=expected_offset,
    )


# ------------------------------------------------------------------------------------------
# Fuzz: parse_published never raises, and agrees with an independent oracle (upb)
# ------------------------------------------------------------------------------------------


def _loose_classes() -> tuple[Any, Any]:
    """Two proto3 messages built at run time: ``Loose { repeated bytes headers = 9; }`` sees
    each header map entry of an api ``Message`` as raw bytes, and ``Entry { string key = 1;
    bytes value = 2; }`` parses one entry as an ordinary message."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="loose_test.proto", package="loose", syntax="proto3"
    )
    loose = fdp.message_type.add(name="Loose")
    loose.field.add(name="headers", number=9, type=f.TYPE_BYTES, label=f.LABEL_REPEATED)
    entry = fdp.message_type.add(name="Entry")
    entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("loose.Loose")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("loose.Entry")),
    )


_LOOSE: tuple[Any, Any] | None = None


def _go_headers(payload: bytes) -> dict[str, bytes]:
    """``Message.headers`` as Go's protobuf (Liftbridge's) decodes them: each map entry is
    inserted, unknown fields inside an entry are skipped, a later entry replaces an earlier one
    with the same key. upb instead moves an entry that holds unknown fields to the message's
    unknown fields (it does so for closed enums), so ``dict(m.headers)`` is not the reference
    for such entries. Raises on an invalid entry (a key that is not UTF-8)."""
    global _LOOSE
    if _LOOSE is None:
        _LOOSE = _loose_classes()
    loose_cls, entry_cls = _LOOSE
    headers: dict[str, bytes] = {}
    for raw_entry in loose_cls.FromString(payload).headers:
        e = entry_cls.FromString(raw_entry)
        headers[e.key] = e.value
    return headers


def oracle(pb2: ModuleType, data: bytes, subject: str, reply: str) -> IngestMessage:
    """ENV-1..5 written straight from the spec, with upb parsing the payload."""
    ok = (
        len(data) >= 8
        and data[:4] == MAGIC
        and data[4] == 0
        and 8 <= data[5] <= len(data)
        and data[7] == 0
    )
    if ok and data[6] & 1:
        ok = data[5] == 12 and crc32c.crc32c(data[12:]) == int.from_bytes(data[8:12], "big")
    if ok:
        try:
            m = pb2.Message.FromString(data[data[5] :])
        except Exception:
            ok = False
        if ok:
            try:
                headers = _go_headers(data[data[5] :])
            except Exception:
                ok = False
    if not ok:
        return raw(data, subject, reply)
    headers["subject"] = subject.encode()
    headers["reply"] = reply.encode()
    return IngestMessage(
        value=m.value,
        key=m.key,
        headers=headers,
        subject=subject,
        reply_subject=reply,
        correlation_id=m.correlationId,
        ack_inbox=m.ackInbox,
        ack_policy=m.ackPolicy,
        expected_offset=m.offset,
    )


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> bytes:
    valid_message = st.builds(
        lambda k, v, h, i: envelope.encode_publish(k, v, h, i, "c", 1, 3)[8:],
        st.binary(max_size=10),
        st.binary(max_size=10),
        HEADERS,
        st.text(max_size=5),
    )
    payload = draw(st.one_of(st.binary(max_size=30), valid_message, valid_message))
    data = bytearray(
        envelope.encode_envelope(
            draw(st.sampled_from([0, 0, 0, 0, 1, 2])), payload, crc=draw(st.booleans())
        )
    )
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[i]
    return bytes(data)


@SETTINGS
@given(
    data=st.one_of(st.binary(max_size=80), st.binary(max_size=40).map(lambda b: MAGIC + b)),
    subject=st.text(max_size=8),
    reply=st.text(max_size=8),
)
@example(data=MAGIC + b"\x00\xff\x00\x00", subject="s", reply="")
@example(data=MAGIC + b"\x00\x0c\x01\x00\x00\x00\x00\x00", subject="s", reply="")
def test_parse_published_never_raises_on_arbitrary_bytes(
    pb2: ModuleType, data: bytes, subject: str, reply: str
) -> None:
    check_against_oracle(pb2, data, subject, reply)


@SETTINGS
@given(data=mutated_envelopes(), subject=st.text(max_size=8), reply=st.text(max_size=8))
# correlationId twice, the first not UTF-8: Go rejects the payload, so it is stored raw.
@example(data=MAGIC + b"\x00\x08\x00\x00" + b"\x08\x00Z\x01\x80\x08\x00Z\x00", subject="", reply="")
# A header entry with an unknown field (3) after one with the same (empty) key: Go inserts it.
@example(
    data=MAGIC + b"\x00\x08\x00\x00" + b"J\x04\x12\x02\x00\x00" + b"J\x03\x1a\x010",
    subject="",
    reply="",
)
def test_parse_published_never_raises_on_mutated_envelopes(
    pb2: ModuleType, data: bytes, subject: str, reply: str
) -> None:
    check_against_oracle(pb2, data, subject, reply)


def check_against_oracle(pb2: ModuleType, data: bytes, subject: str, reply: str) -> None:
    got = parse_published(data, subject, reply)
    assert got == oracle(pb2, data, subject, reply)
    event("stored raw" if got == raw(data, subject, reply) else "envelope honoured")
    assert got.headers["subject"] == subject.encode()
    assert got.headers["reply"] == reply.encode()
    # The body it produces is always a valid Message.
    body = got.encode_body()
    assert codec.decode_message(body).value == got.value


@pytest.mark.parametrize(
    "data",
    [bytearray(hand_envelope(b"\x1a\x01v")), memoryview(hand_envelope(b"\x1a\x01v"))],
)
def test_parse_published_accepts_buffer_types(data: Any) -> None:
    assert parse_published(data, "s", "").value == b"v"


@SETTINGS
@given(data=mutated_envelopes(), subject=st.text(max_size=8), reply=st.text(max_size=8))
def test_body_is_byte_identical_to_storage_encoding(data: bytes, subject: str, reply: str) -> None:
    """IngestMessage and lb.storage agree on the record body, byte for byte, so either may
    encode it and Subscribe may strip the ack-field suffix of any stored body."""
    from lb.storage import records

    got = parse_published(data, subject, reply)
    fields = {f: getattr(got, f) for f in got.__slots__ if f != "expected_offset"}
    assert got.encode_body() == records.encode_body(records.MessageIn(**fields))
    stored = records.decode_body(got.encode_body())
    assert (stored.key, stored.value, stored.headers) == (got.key, got.value, got.headers)
    assert (stored.ack_inbox, stored.correlation_id, stored.ack_policy) == (
        got.ack_inbox,
        got.correlation_id,
        got.ack_policy,
    )


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.binary(max_size=300).filter(lambda d: d[:4] != envelope.MAGIC),
            st.sampled_from(["", "s", "orders.eu", "ü.x"]) | st.text(max_size=6),
            st.sampled_from(["", "_INBOX.a"]) | st.text(max_size=6),
        ),
        max_size=20,
    )
)
def test_raw_body_encoder_matches_the_general_path(messages: list[tuple[bytes, str, str]]) -> None:
    """The writer's fast path for plain NATS data stores exactly what the general path does,
    also across cache hits, misses and the bound."""
    enc = envelope.RawBodyEncoder()
    for data, subject, reply in messages * 2:
        assert enc.body(data, subject, reply) == parse_published(data, subject, reply).encode_body()


def test_raw_body_encoder_is_bounded() -> None:
    enc = envelope.RawBodyEncoder()
    for i in range(envelope.RAW_TAILS_MAX * 3):
        assert enc.body(b"v", "s", f"r{i}") == parse_published(b"v", "s", f"r{i}").encode_body()
        assert len(enc._tails) <= envelope.RAW_TAILS_MAX
