"""codec.SubscribeEncoder (the Subscribe hot path) against :func:`codec.message_from_body`:
byte-identical output for every record of a sequence, whatever its caches (timestamp field,
the previous body's rest and cut point) hold; malformed bodies raise the same DecodeError."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb import envelope
from lb.codec import DecodeError, SubscribeEncoder, encode_body, message_from_body


@dataclass
class Rec:
    offset: int
    timestamp_ns: int
    body: bytes


OFFSET = st.sampled_from([0, 1, 127, 128, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 0xFFFFFFF,
                          0x10000000, 2**62]) | st.integers(0, 2**63 - 1)
TIMESTAMP = st.sampled_from([0, 1, 1_700_000_000_123_456_789, 1_700_000_000_123_456_790])
# Filler that looks like an ack field tag (0x52), so that a wrong hop over a value shows.
VALUE = st.sampled_from([0, 1, 127, 128, 256, 20_000]).map(lambda n: b"R" * n) | st.binary(
    max_size=300
)
SMALL = st.sampled_from(["", "subj", "_INBOX.x"])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Well-formed bodies from few distinct parts (so that rests repeat), or malformed ones."""
    body = encode_body(
        draw(st.sampled_from([b"", b"k"]) | st.binary(max_size=200)),
        draw(VALUE),
        draw(SMALL),
        draw(SMALL),
        draw(st.sampled_from([{}, {"subject": b"subj", "reply": b""}, {"h": b"v"}])),
        draw(SMALL),
        draw(st.sampled_from(["", "c", "c-1"])),
        draw(st.sampled_from([0, 1, 2, -1])),
    )
    how = draw(st.sampled_from(["ok", "ok", "ok", "truncate", "flip", "append", "raw"]))
    if how == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif how == "flip" and body:
        i = draw(st.integers(0, len(body) - 1))
        body = body[:i] + bytes((draw(st.integers(0, 255)),)) + body[i + 1 :]
    elif how == "append":
        body += draw(st.binary(min_size=1, max_size=6))
    elif how == "raw":
        body = draw(st.binary(max_size=40))
    return body


def _reference(offset: int, ts: int, stream: str, partition: int, body: bytes) -> bytes | None:
    try:
        return message_from_body(offset, ts, stream, partition, body)
    except DecodeError:
        return None


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.tuples(OFFSET, TIMESTAMP, bodies()), min_size=1, max_size=10),
    stream=st.sampled_from(["", "s", "orders"]),
    partition=st.sampled_from([0, 1, 300]),
)
def test_subscribe_encoder_is_byte_identical(
    records: list[tuple[int, int, bytes]], stream: str, partition: int
) -> None:
    one = SubscribeEncoder(stream, partition)
    many = SubscribeEncoder(stream, partition)
    wanted = []
    for offset, ts, body in records:
        want = _reference(offset, ts, stream, partition, body)
        if want is None:
            with pytest.raises(DecodeError):
                one.encode(offset, ts, body)
        else:
            assert one.encode(offset, ts, body) == want
        wanted.append(want)
    # The batch form, over the same records (run by run between malformed bodies).
    run: list[Rec] = []
    expected: list[bytes] = []
    for (offset, ts, body), want in zip(records, wanted, strict=True):
        if want is None:
            assert many.encode_records(run) == expected
            run, expected = [], []
            with pytest.raises(DecodeError):
                many.encode_records([Rec(offset, ts, body)])
        else:
            run.append(Rec(offset, ts, body))
            expected.append(want)
    assert many.encode_records(run) == expected


def test_repeated_rest_with_different_values() -> None:
    """Raw NATS records: the same subject/header rest after values of different sizes."""
    enc = SubscribeEncoder("s", 0)
    for i, size in enumerate([0, 5, 127, 128, 300, 20_000, 5]):
        m = envelope.parse_published(b"R" * size, "subj", "")
        body = m.encode_body()
        assert enc.encode(i, 7, body) == message_from_body(i, 7, "s", 0, body)
    enc2 = SubscribeEncoder("s", 0)
    for i in range(5):  # PublishAsync records: the rest holds a different correlation id each
        body = encode_body(b"", b"x" * i, "subj", "", {}, "inbox", f"c{i}", 1)
        assert enc2.encode(i, 7, body) == message_from_body(i, 7, "s", 0, body)
