"""codec.AckEncoder (the partition writer's per-partition ack template) against the plain
encoders: byte-identical output for every call of a sequence, whatever the caches hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lb import codec, envelope
from lb.codec import AckEncoder, encode_ack_proto

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=12)
# Few distinct subjects/inboxes/timestamps, so that the caches hit and miss in turn.
SUBJECT = st.sampled_from(["", "orders", "orders.eu", "ü.x"]) | TEXT
INBOX = st.sampled_from(["", "lb.ack.a.1", "lb.ack.a.2", "_INBOX.x"]) | TEXT
TIMESTAMP = st.sampled_from([0, 1, 1_732_600_000_123_456_789]) | INT64

ACK = st.fixed_dictionaries(
    {
        "msg_subject": SUBJECT,
        "offset": st.sampled_from([0, 1, 127, 128, 2**40]) | INT64,
        "ack_inbox": INBOX,
        "correlation_id": TEXT,
        "ack_policy": st.sampled_from([0, 1, 2]) | INT32,
        "reception_timestamp_ns": TIMESTAMP,
        "commit_timestamp_ns": TIMESTAMP,
        "ack_error": st.sampled_from([0, 1, 2, 3, 4]) | INT32,
    }
)


@settings(max_examples=300, deadline=None)
@given(
    stream=TEXT,
    partition_subject=TEXT,
    prefix=st.sampled_from([b"", envelope.encode_envelope(envelope.MsgType.ACK, b"")]),
    acks=st.lists(ACK, min_size=1, max_size=12),
)
def test_ack_encoder_is_byte_identical(
    stream: str, partition_subject: str, prefix: bytes, acks: list[dict[str, object]]
) -> None:
    enc = AckEncoder(stream, partition_subject, prefix)
    for a in acks:
        got = enc.encode(**a)  # type: ignore[arg-type]
        want = prefix + encode_ack_proto(stream=stream, partition_subject=partition_subject, **a)  # type: ignore[arg-type]
        assert got == want


@settings(max_examples=100, deadline=None)
@given(stream=TEXT, partition_subject=TEXT, ack=ACK)
def test_ack_encoder_with_envelope_header_is_an_ack_envelope(
    stream: str, partition_subject: str, ack: dict[str, object]
) -> None:
    enc = AckEncoder(stream, partition_subject, envelope.encode_envelope(envelope.MsgType.ACK, b""))
    got = enc.encode(**ack)  # type: ignore[arg-type]
    assert got == envelope.encode_ack(stream=stream, partition_subject=partition_subject, **ack)  # type: ignore[arg-type]
    decoded = envelope.decode_ack(got)
    assert decoded is not None and decoded.correlation_id == ack["correlation_id"]


def test_ack_encoder_inbox_cache_is_bounded() -> None:
    enc = AckEncoder("s", "subj")
    n = codec._ACK_INBOX_CACHE_MAX * 2 + 3
    for i in range(n):
        inbox = f"inbox.{i}"
        got = enc.encode("subj", i, inbox, f"c{i}", 0, 5, 6)
        assert got == encode_ack_proto(
            stream="s",
            partition_subject="subj",
            msg_subject="subj",
            offset=i,
            ack_inbox=inbox,
            correlation_id=f"c{i}",
            reception_timestamp_ns=5,
            commit_timestamp_ns=6,
        )
        assert len(enc._inboxes) <= codec._ACK_INBOX_CACHE_MAX
