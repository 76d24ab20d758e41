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
    data = b"".join(fmt.encode_batch(10, 4, bodies, [5, 7, 6]))
    hdr = fmt.parse_header(data)
    assert (hdr.base_offset, hdr.leader_epoch, hdr.record_count, hdr.last_offset_delta,
            hdr.first_timestamp, hdr.max_timestamp, hdr.size) == (10, 4, 3, 2, 5, 7, len(data))
    assert fmt.header_problem(hdr) is None
    assert fmt.crc_ok(data, 0, hdr.size, hdr.crc)
    assert fmt.records_problem(data, 0, hdr) is None
    assert hdr.attributes == fmt.ATTR_TIMESTAMP_COLUMN  # timestamps differ: a column
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


def test_ingest_batch_carries_only_the_lengths_column():
    bodies = [b"a" * 10, b"", b"ccc"]
    h, columns, joined = fmt.encode_batch(0, 0, bodies, 77)
    assert columns == b"".join(len(b).to_bytes(4, "little") for b in bodies)
    assert joined == b"".join(bodies)
    data = h + columns + joined
    hdr = fmt.parse_header(data)
    assert hdr.attributes == 0 and hdr.size == fmt.HEADER_SIZE + 4 * 3 + 13
    same_ts = b"".join(fmt.encode_batch(0, 0, bodies, [77, 77, 77]))
    assert same_ts == data  # equal per-record timestamps need no column either


def test_sparse_batch_with_dense_prefix_needs_no_offset_column():
    data = fmt.encode_sparse_batch(0, 1, 9, 50, [(0, 50, b"x"), (1, 50, b"y")])
    h = fmt.parse_header(data)
    assert h.attributes == 0 and h.next_offset == 10
    out: list[Record] = []
    fmt.decode_into(data, 0, h, 0, 100, out)
    assert [(r.offset, r.body) for r in out] == [(0, b"x"), (1, b"y")]


def _reseal(data: bytes, mutate) -> bytes:
    """Apply ``mutate`` to the batch bytes and fix up the CRC (a faulty writer's batch)."""
    from crc32c import crc32c

    b = bytearray(data)
    mutate(b)
    crc = crc32c(bytes(b[fmt.CRC_END:]), crc32c(bytes(b[: fmt.CRC_POS])))
    b[fmt.CRC_POS : fmt.CRC_END] = crc.to_bytes(4, "big")
    return bytes(b)


def test_records_problem_catches_crc_valid_but_inconsistent_batches():
    good = b"".join(fmt.encode_batch(0, 0, [b"ab", b"cd"], 1))
    p = fmt.HEADER_SIZE

    def longer(b):
        b[p : p + 4] = (3).to_bytes(4, "little")

    bad = _reseal(good, longer)
    h = fmt.parse_header(bad)
    assert fmt.crc_ok(bad, 0, h.size, h.crc)
    assert fmt.records_problem(bad, 0, h) == "record lengths do not fill the batch"
    sparse = fmt.encode_sparse_batch(0, 0, 5, 1, [(1, 1, b"a"), (4, 1, b"b")])
    col = fmt.HEADER_SIZE + 8  # the offset column, after two lengths

    def backwards(b):
        b[col : col + 8] = (4).to_bytes(4, "little") + (1).to_bytes(4, "little")

    def beyond(b):
        b[col + 4 : col + 8] = (6).to_bytes(4, "little")

    assert fmt.records_problem(_reseal(sparse, backwards), 0,
                               fmt.parse_header(sparse)) == "offset deltas not increasing"
    assert fmt.records_problem(_reseal(sparse, beyond), 0,
                               fmt.parse_header(sparse)) == "offset delta beyond the batch"


def test_header_problem_rejects_unknown_attributes_and_versions():
    data = b"".join(fmt.encode_batch(0, 0, [b"x"], 1))

    def attrs(value):
        def m(b):
            b[fmt.CRC_END : fmt.CRC_END + 2] = value.to_bytes(2, "big")
        return fmt.parse_header(_reseal(data, m))

    assert fmt.header_problem(attrs(0x0001)) == "unsupported compression 1"
    assert fmt.header_problem(attrs(0x0400)) == "unknown attributes 0x400"
    v1 = bytearray(data)
    v1[16] = 1
    assert fmt.header_problem(fmt.parse_header(bytes(v1))) == "unknown format version 1"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_columnar_round_trip(data):
    n = data.draw(st.integers(0, 30))
    deltas = sorted(data.draw(st.sets(st.integers(0, 60), min_size=n, max_size=n)))
    lod = data.draw(st.integers(max(deltas, default=0), 70))
    first_ts = data.draw(st.integers(-(2**40), 2**40))
    recs = [(d, first_ts + data.draw(st.integers(-(2**30), 2**30)), data.draw(blobs))
            for d in deltas]
    buf = fmt.encode_sparse_batch(5, 2, lod, first_ts, recs)
    h = fmt.parse_header(buf)
    assert fmt.header_problem(h) is None and fmt.records_problem(buf, 0, h) is None
    assert fmt.crc_ok(buf, 0, h.size, h.crc) and h.size == len(buf)
    assert fmt.iter_record_fields(buf, 0, h) == recs
    lo = data.draw(st.integers(0, 80))
    hi = data.draw(st.integers(0, 80))
    out: list[Record] = []
    fmt.decode_into(buf, 0, h, lo, hi, out)
    assert [(r.offset, r.timestamp_ns, r.body) for r in out] == [
        (5 + d, ts, b) for d, ts, b in recs if lo <= 5 + d <= hi]
    if n:
        whole = b"".join(fmt.encode_batch(9, 1, [r[2] for r in recs], [r[1] for r in recs]))
        hw = fmt.parse_header(whole)
        out = []
        fmt.decode_into(whole, 0, hw, 0, 10**6, out)
        assert [(r.offset, r.timestamp_ns, r.body) for r in out] == [
            (9 + i, ts, b) for i, (_d, ts, b) in enumerate(recs)]
