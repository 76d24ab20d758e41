from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lb import protowire as pw
from lb.storage import MessageIn, Record, decode_body, encode_body, key_of, message_bytes
from lb.storage import batch as fmt

texts = st.text(max_size=20)
blobs = st.binary(max_size=300)


@settings(max_examples=200, deadline=None)
@given(value=blobs, key=blobs, subject=texts, reply=texts, inbox=texts, corr=texts,
       ack=st.integers(0, 2), headers=st.none() | st.dictionaries(texts, blobs, max_size=3))
def test_body_round_trip(value, key, subject, reply, inbox, corr, ack, headers):
    m = MessageIn(value, key=key, headers=headers, subject=subject, reply_subject=reply,
                  ack_inbox=inbox, correlation_id=corr, ack_policy=ack)
    body = encode_body(m)
    f = decode_body(body)
    assert (f.value, f.key, f.subject, f.reply_subject, f.ack_inbox, f.correlation_id,
            f.ack_policy) == (value, key, subject, reply, inbox, corr, ack)
    assert (f.headers or {}) == (headers or {})
    assert key_of(body) == key


def test_key_of_slow_path_for_foreign_field_order():
    body = pw.field_bytes(3, b"v") + pw.field_bytes(2, b"the-key")
    assert key_of(body) == b"the-key"
    assert key_of(pw.field_bytes(3, b"v")) == b""
    long_key = b"x" * 300
    assert key_of(encode_body(MessageIn(b"v", key=long_key))) == long_key


def test_message_bytes_is_prefix_plus_body():
    body = encode_body(MessageIn(b"hello", key=b"k", subject="s"))
    rec = Record(42, 1_700_000_000_000_000_000, 3, body)
    out = message_bytes(rec, "stream-a", 2)
    fields = {num: val for num, _wt, val in pw.iter_fields(out)}
    assert fields == {1: 42, 4: 1_700_000_000_000_000_000, 5: b"stream-a", 6: 2, 2: b"k",
                      3: b"hello", 7: b"s"}
    assert out.endswith(body)


def test_batch_encode_decode_and_crc():
    bodies = [b"a", b"bb", b""]
    h, r = fmt.encode_batch(10, 4, bodies, [5, 7, 6])
    data = h + r
    hdr = fmt.parse_header(data)
    assert (hdr.base_offset, hdr.leader_epoch, hdr.record_count, hdr.last_offset_delta,
            hdr.first_timestamp, hdr.max_timestamp, hdr.size) == (10, 4, 3, 2, 5, 7, len(data))
    assert fmt.header_problem(hdr) is None
    assert fmt.crc_ok(data, 0, hdr.size, hdr.crc)
    assert fmt.records_consistent(data, 0, hdr)
    out: list[Record] = []
    fmt.decode_into(data, 0, hdr, 11, 99, out)
    assert [(r.offset, r.timestamp_ns, r.leader_epoch, r.body) for r in out] == [
        (11, 7, 4, b"bb"), (12, 6, 4, b"")]
    for i in range(len(data)):  # every single-byte flip is caught by the CRC
        bad = bytearray(data)
        bad[i] ^= 0x01
        hb = fmt.parse_header(bytes(bad))
        assert fmt.header_problem(hb) is not None or hb.size != len(data) or not fmt.crc_ok(
            bytes(bad), 0, len(data), hb.crc)


def test_sparse_batch_keeps_offsets():
    data = fmt.encode_sparse_batch(100, 1, 9, 50, [(2, 55, b"x"), (9, 60, b"y")])
    h = fmt.parse_header(data)
    assert h.next_offset == 110 and h.record_count == 2 and h.max_timestamp == 60
    out: list[Record] = []
    fmt.decode_into(data, 0, h, 0, 1000, out)
    assert [(r.offset, r.timestamp_ns) for r in out] == [(102, 55), (109, 60)]
    empty = fmt.encode_sparse_batch(100, 1, 9, 50, [])
    he = fmt.parse_header(empty)
    assert he.record_count == 0 and fmt.crc_ok(empty, 0, he.size, he.crc)
