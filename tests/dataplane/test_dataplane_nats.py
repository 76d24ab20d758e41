"""The NATS side of the data plane: raw messages, envelopes with an AckInbox, partition
subjects, shared and wildcard subjects, load-balance groups, malformed input (issue 5).

A nats-py client publishes straight to the stream subjects on the same real nats-server the lb
process uses. Spec ids: ENV-*, ACK-*, PART-*.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import crc32c
import pytest
from dataplane_kit import create, fast_read, publish, read, unique, wait_for

from lb import envelope
from lb._proto import proto as api
from lb.testing.lb_process import LbProcess

pytestmark = pytest.mark.anyio

MAGIC = b"\xb9\x0e\x43\xb4"
REPLICATION_BYTES_MAX = 256 * 1024


@pytest.fixture(scope="module")
def lb_extra_config() -> dict[str, object]:
    return {"clustering.replication.max.bytes": REPLICATION_BYTES_MAX}


def _ack(payload: bytes) -> api.Ack:
    """Decode an Ack with betterproto, independently of lb's codec."""
    return api.Ack().parse(payload)


async def _values(client: api.ApiStub, stream: str, n: int, partition: int = 0) -> list[bytes]:
    """Wait until the partition holds ``n`` messages; return their values."""

    async def check() -> list[api.Message] | None:
        msgs, _ = await read(client, stream, partition=partition)
        return msgs if len(msgs) >= n else None

    msgs = await wait_for(check, what=f"{n} messages in {stream}/{partition}")
    return [m.value for m in msgs]


async def test_raw_nats_message_stored_verbatim(client: api.ApiStub, nc: Any) -> None:
    name = unique()
    await create(client, name, partitions=2)
    await nc.publish(name, b"raw bytes")
    await nc.publish(name, b"with reply", reply="my.reply")
    await nc.publish(f"{name}.1", b"to p1")
    await nc.flush()
    msgs = await wait_for(
        lambda: _at_least(client, name, 2), what="raw messages stored"
    )
    assert [m.value for m in msgs] == [b"raw bytes", b"with reply"]
    m0, m1 = msgs
    assert (m0.key, m0.subject, m0.reply_subject) == (b"", name, "")
    assert dict(m0.headers) == {"subject": name.encode(), "reply": b""}
    assert (m1.reply_subject, dict(m1.headers)["reply"]) == ("my.reply", b"my.reply")
    assert await _values(client, name, 1, partition=1) == [b"to p1"]  # PART-1


async def _at_least(client: api.ApiStub, name: str, n: int) -> list[api.Message] | None:
    msgs, _ = await read(client, name)
    return msgs if len(msgs) >= n else None


async def test_envelope_with_ack_inbox_gets_an_ack(client: api.ApiStub, nc: Any) -> None:
    name = unique()
    await create(client, name, subject=f"{name}.x", partitions=2)
    inbox = f"acks.{unique()}"
    acks: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_ack(msg: Any) -> None:
        await acks.put(msg.data)

    await nc.subscribe(inbox, cb=on_ack)
    data = envelope.encode_publish(
        key=b"k", value=b"v", headers={"h": b"1"}, ack_inbox=inbox, correlation_id="c1",
        ack_policy=int(api.AckPolicy.ALL),
    )
    await nc.publish(f"{name}.x.1", data)
    raw = await asyncio.wait_for(acks.get(), 5)
    # ACK-4: envelope MsgType 1, HeaderLen 8, no CRC, around an Ack.
    assert raw[:4] == MAGIC and raw[4:8] == b"\x00\x08\x00\x01"
    ack = _ack(raw[8:])
    assert (ack.stream, ack.partition_subject) == (name, f"{name}.x")
    assert ack.msg_subject == f"{name}.x.1"
    assert (ack.offset, ack.ack_inbox, ack.correlation_id, ack.ack_policy) == (0, inbox, "c1", 1)
    assert ack.commit_timestamp >= ack.reception_timestamp > 0
    (m,), _ = await read(client, name, partition=1)
    assert (m.key, m.value, m.headers["h"]) == (b"k", b"v", b"1")
    assert m.timestamp == ack.reception_timestamp

    # ackPolicy NONE: stored, no ack (ACK-1). A later LEADER publish is acked at offset 2.
    await nc.publish(f"{name}.x.1", envelope.encode_publish(value=b"n", ack_inbox=inbox,
                                                             ack_policy=int(api.AckPolicy.NONE)))
    await nc.publish(f"{name}.x.1", envelope.encode_publish(value=b"l", ack_inbox=inbox,
                                                             correlation_id="c3"))
    ack = _ack((await asyncio.wait_for(acks.get(), 5))[8:])
    assert (ack.correlation_id, ack.offset) == ("c3", 2)
    assert acks.empty()


def _envelope(payload: bytes, *, version: int = 0, header_len: int = 8, flags: int = 0,
              msg_type: int = 0, crc: bytes = b"") -> bytes:
    return MAGIC + bytes([version, header_len, flags, msg_type]) + crc + payload


async def test_malformed_messages_are_stored_raw(client: api.ApiStub, nc: Any) -> None:
    """ENV-4/ENV-7: anything that is not a valid Publish envelope is stored verbatim, and
    nothing stalls: a good envelope after them is stored and acked."""
    name = unique()
    await create(client, name)
    good = api.Message(value=b"good").SerializeToString()
    bad_crc = struct.pack(">I", (crc32c.crc32c(good) + 1) & 0xFFFFFFFF)
    samples = [
        MAGIC,  # header cut short
        MAGIC + b"\x00",
        _envelope(good, version=1),
        _envelope(good, header_len=200),  # HeaderLen past the data (ENV-7)
        _envelope(good, header_len=3),
        _envelope(good, msg_type=1),  # an Ack, not a Publish
        _envelope(good, msg_type=14),
        _envelope(good, header_len=12, flags=1, crc=bad_crc),
        _envelope(b"\xff\xff\xff\xff\xff"),  # unparsable protobuf
        _envelope(b"\x0a\x05ab"),  # truncated field
        b"",
        bytes(range(256)) * 10,
    ]
    for data in samples:
        await nc.publish(name, data)
    # NATS orders messages per connection only: the samples must reach the NATS server
    # before the server's own publish of "after" does.
    await nc.flush()
    r = await publish(client, name, b"after", ack_policy=api.AckPolicy.ALL)
    assert r.ack.offset == len(samples)
    values = await _values(client, name, len(samples) + 1)
    assert values == [*samples, b"after"]
    # A valid CRC-flagged envelope is decoded (ENV-2).
    good_crc = struct.pack(">I", crc32c.crc32c(good))
    await nc.publish(name, _envelope(good, header_len=12, flags=1, crc=good_crc))
    values = await _values(client, name, len(samples) + 2)
    assert values[-1] == b"good"


async def test_streams_share_subjects_and_wildcards(client: api.ApiStub, nc: Any) -> None:
    subject = unique("sh")
    a, b, wild, deep = unique(), unique(), unique(), unique()
    await create(client, a, subject=f"{subject}.one")
    await create(client, b, subject=f"{subject}.one")
    await create(client, wild, subject=f"{subject}.*")
    await create(client, deep, subject=f"{subject}.>")
    await nc.publish(f"{subject}.one", b"1")
    await nc.publish(f"{subject}.two", b"2")
    await nc.publish(f"{subject}.two.three", b"3")
    await nc.flush()
    assert await _values(client, a, 1) == [b"1"]
    assert await _values(client, b, 1) == [b"1"]  # each stream keeps its own copy (PART-2)
    assert await _values(client, wild, 2) == [b"1", b"2"]
    assert await _values(client, deep, 3) == [b"1", b"2", b"3"]
    msgs, _ = await read(client, wild)
    assert [m.subject for m in msgs] == [f"{subject}.one", f"{subject}.two"]


async def test_group_streams_share_messages(client: api.ApiStub, nc: Any) -> None:
    subject = unique("grp")
    g1, g2, solo = unique(), unique(), unique()
    await create(client, g1, subject=subject, group="workers")
    await create(client, g2, subject=subject, group="workers")
    await create(client, solo, subject=subject)
    n = 200
    for i in range(n):
        await nc.publish(subject, b"%d" % i)
    await nc.flush()
    assert len(await _values(client, solo, n)) == n  # no group: every message

    async def group_total() -> bool:
        counts = [len((await read(client, s))[0]) for s in (g1, g2)]
        return sum(counts) == n

    await wait_for(group_total, what="the group to store every message once")
    v1 = (await read(client, g1))[0]
    v2 = (await read(client, g2))[0]
    assert sorted(int(m.value) for m in v1 + v2) == list(range(n))  # PART-3: exactly once


async def test_nats_burst_is_stored_in_order(
    client: api.ApiStub, nc: Any, lb_server: LbProcess
) -> None:
    """Many raw messages at once: batched writes keep NATS order, nothing lost."""
    name = unique()
    await create(client, name)
    n = 20_000
    for i in range(n):
        await nc.publish(name, b"%d" % i)
    await nc.flush()
    msgs = await fast_read(lb_server.port, name, n)
    assert [m.offset for m in msgs] == list(range(n))
    assert [m.value for m in msgs] == [b"%d" % i for i in range(n)]


async def test_too_large_raw_message_is_not_stored(
    client: api.ApiStub, nc: Any
) -> None:
    """A NATS payload over replication.max.bytes is not stored; an enveloped one is nacked
    with TOO_LARGE and no offset and no commit time (ACK-3, ACK-5)."""
    name = unique()
    await create(client, name)
    inbox = f"acks.{unique()}"
    acks: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_ack(msg: Any) -> None:
        await acks.put(msg.data)

    await nc.subscribe(inbox, cb=on_ack)
    big = REPLICATION_BYTES_MAX + 1  # below the NATS max payload
    await nc.publish(name, b"x" * big)
    await nc.publish(name, envelope.encode_publish(value=b"y" * big, ack_inbox=inbox,
                                                   correlation_id="big"))
    ack = _ack((await asyncio.wait_for(acks.get(), 5))[8:])
    assert (ack.ack_error, ack.correlation_id, ack.offset, ack.commit_timestamp) == (
        api.AckError.TOO_LARGE, "big", 0, 0,
    )
    await nc.publish(name, b"small")
    assert await _values(client, name, 1) == [b"small"]
