"""Publish, PublishAsync, PublishToSubject, acks and optimistic concurrency (issue 5).

Spec ids: PUB-*, PUBA-*, PUBS-*, ACK-*, OCC-*, ENV-5.
"""

from __future__ import annotations

import time

import betterproto
import pytest
from dataplane_kit import (
    create,
    fast_publish_async,
    fast_read,
    publish,
    publish_async_stream,
    read,
    unique,
    wait_for,
)
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from lb._proto import proto as api
from lb.testing.lb_process import LbProcess

pytestmark = pytest.mark.anyio

REPLICATION_BYTES_MAX = 64 * 1024


@pytest.fixture(scope="module")
def lb_extra_config() -> dict[str, object]:
    return {"clustering.replication.max.bytes": REPLICATION_BYTES_MAX}


async def _status(coro: object) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as err:
        await coro  # type: ignore[misc]
    return err.value.status, err.value.message or ""


async def test_publish_validation_order(client: api.ApiStub) -> None:
    name = unique()
    occ = unique()
    await create(client, name, partitions=2)
    await create(client, occ, optimistic_concurrency_control=api.NullableBool(True))
    await client.set_stream_readonly(
        api.SetStreamReadonlyRequest(name=name, partitions=[1], readonly=True)
    )
    cases = [
        (dict(stream=""), Status.INVALID_ARGUMENT, "no stream provided"),
        (dict(stream="nope", partition=-1), Status.NOT_FOUND, "no such stream: nope"),
        (dict(stream=name, partition=42), Status.NOT_FOUND, "no such partition: 42"),
        (dict(stream=name, partition=-1), Status.NOT_FOUND, "no such partition: -1"),
        (dict(stream=name, partition=1), Status.FAILED_PRECONDITION, "readonly partition: 1"),
        (
            dict(stream=occ, ack_policy=api.AckPolicy.NONE),
            Status.INVALID_ARGUMENT,
            "stream with concurrency control must have AckPolicy set",
        ),
    ]
    for fields, status, text in cases:
        req = api.PublishRequest(value=b"v", **fields)  # type: ignore[arg-type]
        assert await _status(client.publish(req, timeout=5)) == (status, text), fields
    # Nothing was stored by the failed publishes; the writable partition still works.
    assert (await publish(client, name, b"ok")).ack.offset == 0


async def test_publish_ack_fields_and_policies(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name, subject=f"{name}.sub", partitions=2)
    before = time.time_ns()
    r = await publish(
        client, name, b"v", partition=1, key=b"k", correlation_id="c1",
        ack_policy=api.AckPolicy.ALL,
    )
    ack = r.ack
    assert ack.stream == name
    assert ack.partition_subject == f"{name}.sub"  # the stream's base subject (ACK-2)
    assert ack.msg_subject == f"{name}.sub.1"
    assert ack.offset == 0
    assert ack.correlation_id == "c1"
    assert ack.ack_policy == api.AckPolicy.ALL
    assert ack.ack_inbox  # server-generated (PUB-4)
    assert ack.ack_error == api.AckError.OK
    assert before <= ack.reception_timestamp <= ack.commit_timestamp <= time.time_ns()
    assert r.correlation_id == "" and not betterproto.serialized_on_wire(r.async_error)
    msgs, _ = await read(client, name, partition=1)
    assert msgs[0].timestamp == ack.reception_timestamp  # ACK-2

    r = await publish(client, name, b"v", ack_policy=api.AckPolicy.LEADER)
    assert r.ack.offset == 0 and r.ack.ack_policy == api.AckPolicy.LEADER
    # NONE, or no deadline: fire and forget, ack unset (PUB-3).
    r = await publish(client, name, b"v", ack_policy=api.AckPolicy.NONE)
    assert not betterproto.serialized_on_wire(r.ack)
    no_deadline = api.ApiStub(client.channel)
    r = await publish(no_deadline, name, b"v", ack_policy=api.AckPolicy.ALL, timeout=None)
    assert not betterproto.serialized_on_wire(r.ack)

    async def stored() -> bool:
        return len((await read(client, name))[0]) == 3

    await wait_for(stored, what="both fire-and-forget publishes stored")

    # A client-supplied ack inbox is used as-is (PUB-4).
    inbox = f"my.inbox.{unique()}"
    r = await publish(client, name, b"v", ack_inbox=inbox)
    assert r.ack.ack_inbox == inbox and r.ack.offset == 3


async def test_publish_deadline_exceeded(client: api.ApiStub) -> None:
    """With minIsr above the ISR size nothing commits: ALL times out, LEADER acks (REPL-5)."""
    name = unique()
    await create(client, name, min_isr=api.NullableInt32(2))
    started = time.monotonic()
    status, _ = await _status(publish(client, name, b"v", timeout=0.5))
    assert status == Status.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
    r = await publish(client, name, b"v", ack_policy=api.AckPolicy.LEADER)
    assert r.ack.offset == 1


async def test_publish_too_large_and_nats_max_payload(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name)
    assert await _status(publish(client, name, b"x" * (REPLICATION_BYTES_MAX + 1))) == (
        Status.INVALID_ARGUMENT,
        "message exceeds max replication size",
    )
    status, text = await _status(publish(client, name, b"x" * (1024 * 1024 + 1)))
    assert status == Status.UNKNOWN
    assert text.startswith("failed to publish to NATS: ")
    # The server keeps serving; nothing was stored.
    assert (await publish(client, name, b"small")).ack.offset == 0


async def test_occ(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name, optimistic_concurrency_control=api.NullableBool(True))
    assert (await publish(client, name, b"a", expected_offset=0)).ack.offset == 0
    assert (await publish(client, name, b"b", expected_offset=1)).ack.offset == 1
    assert await _status(publish(client, name, b"c", expected_offset=1)) == (
        Status.UNKNOWN,
        "incorrect expected offset",
    )
    assert await _status(publish(client, name, b"c", expected_offset=100)) == (
        Status.UNKNOWN,
        "incorrect expected offset",
    )
    assert (await publish(client, name, b"c", expected_offset=-1)).ack.offset == 2
    md = await client.fetch_partition_metadata(
        api.FetchPartitionMetadataRequest(stream=name, partition=0)
    )
    nxt = md.metadata.newest_offset + 1  # the intended retry (OCC-4)
    assert (await publish(client, name, b"d", expected_offset=nxt)).ack.offset == 3
    msgs, _ = await read(client, name)
    assert [m.value for m in msgs] == [b"a", b"b", b"c", b"d"]

    # On a stream without OCC, expectedOffset is ignored.
    plain = unique()
    await create(client, plain)
    assert (await publish(client, plain, b"a", expected_offset=7)).ack.offset == 0


async def test_server_headers(client: api.ApiStub) -> None:
    """Stored messages carry headers subject and reply, overriding the user's (ENV-5)."""
    name = unique()
    await create(client, name, subject=f"{name}.sub", partitions=2)
    await publish(
        client, name, b"v", partition=1, key=b"k",
        headers={"h": b"1", "subject": b"fake", "reply": b"fake"},
    )
    (m,), _ = await read(client, name, partition=1)
    assert dict(m.headers) == {"h": b"1", "subject": f"{name}.sub.1".encode(), "reply": b""}
    assert (m.subject, m.reply_subject) == (f"{name}.sub.1", "")
    assert (m.stream, m.partition, m.offset, m.key, m.value) == (name, 1, 0, b"k", b"v")
    # Ack fields are not delivered (SUB-4).
    assert (m.ack_inbox, m.correlation_id) == ("", "")


async def test_publish_async(client: api.ApiStub) -> None:
    name = unique()
    occ = unique()
    ro = unique()
    await create(client, name, partitions=2)
    await create(client, occ, optimistic_concurrency_control=api.NullableBool(True))
    await create(client, ro)
    await client.set_stream_readonly(api.SetStreamReadonlyRequest(name=ro, readonly=True))
    P = api.PublishRequest
    requests = [
        P(stream=name, value=b"0", correlation_id="ok0", ack_inbox="ignored.inbox"),
        P(stream="nope", value=b"x", correlation_id="e1"),
        P(stream="", value=b"x", correlation_id="e2"),
        P(stream=name, partition=9, value=b"x", correlation_id="e3"),
        P(stream=ro, value=b"x", correlation_id="e4"),
        P(stream=occ, value=b"x", correlation_id="e5", ack_policy=api.AckPolicy.NONE),
        P(stream=occ, value=b"x", correlation_id="e6", expected_offset=5),
        P(stream=name, value=b"x" * (REPLICATION_BYTES_MAX + 1), correlation_id="e7"),
        P(stream=name, value=b"none", correlation_id="n", ack_policy=api.AckPolicy.NONE),
        P(stream=name, partition=1, value=b"1", correlation_id="ok1",
          ack_policy=api.AckPolicy.ALL),
        P(stream=occ, value=b"x", correlation_id="ok2", expected_offset=0),
    ]
    responses: dict[str, api.PublishResponse] = {}
    async with publish_async_stream(client) as st:
        for req in requests:
            await st.send_message(req)
        while len(responses) < len(requests) - 1:  # ackPolicy NONE gets no response
            resp = await st.recv_message()
            assert resp is not None
            responses[resp.correlation_id] = resp
        await st.end()
        assert await st.recv_message() is None  # ends with OK once drained (PUBA-5)
    E = api.PublishAsyncErrorCode
    expected_errors = {
        "e1": (E.NOT_FOUND, "no such stream: nope"),
        "e2": (E.NOT_FOUND, "no such stream: "),
        "e3": (E.NOT_FOUND, "no such partition: 9"),
        "e4": (E.READONLY, "readonly partition: 0"),
        "e5": (E.BAD_REQUEST, "stream with concurrency control must have AckPolicy set"),
        "e6": (E.INCORRECT_OFFSET, "incorrect expected offset"),
        "e7": (E.BAD_REQUEST, "message exceeds max replication size"),
    }
    for cid, (code, text) in expected_errors.items():
        resp = responses[cid]
        assert (resp.async_error.code, resp.async_error.message) == (code, text), cid
        assert betterproto.serialized_on_wire(resp.ack)  # an empty Ack for old clients
    assert "n" not in responses
    for cid, stream, _partition in [("ok0", name, 0), ("ok1", name, 1), ("ok2", occ, 0)]:
        resp = responses[cid]
        assert not betterproto.serialized_on_wire(resp.async_error), cid
        assert (resp.ack.stream, resp.ack.correlation_id) == (stream, cid)
        assert resp.ack.offset == 0 and resp.ack.ack_inbox != "ignored.inbox"  # PUBA-4
    msgs, _ = await read(client, name)
    assert [m.value for m in msgs] == [b"0", b"none"]


async def test_publish_async_many_in_order(client: api.ApiStub, lb_server: LbProcess) -> None:
    """Many pipelined publishes: every one acked once, offsets in send order."""
    name = unique()
    await create(client, name)
    n = 10_000
    responses = await fast_publish_async(lb_server.port, name, [b"%d" % i for i in range(n)])
    assert all(r.async_error_code is None and r.ack is not None for r in responses)
    offsets = {r.correlation_id: r.ack.offset for r in responses if r.ack is not None}
    assert offsets == {str(i): i for i in range(n)}
    msgs = await fast_read(lb_server.port, name, n)
    assert [m.value for m in msgs] == [b"%d" % i for i in range(n)]


async def test_publish_to_subject(client: api.ApiStub) -> None:
    subject = unique("subj")
    a, b = unique(), unique()
    await create(client, a, subject=subject)
    await create(client, b, subject=subject)
    r = await client.publish_to_subject(
        api.PublishToSubjectRequest(
            subject=subject, key=b"k", value=b"v", headers={"h": b"1"},
            correlation_id="c", ack_policy=api.AckPolicy.ALL,
        ),
        timeout=5,
    )
    assert r.ack.stream in (a, b) and r.ack.correlation_id == "c" and r.ack.offset == 0
    for stream in (a, b):
        (m,), _ = await read(client, stream)
        assert (m.key, m.value, m.headers["h"]) == (b"k", b"v", b"1")

    # No stream listening: DeadlineExceeded with a deadline (PUBS-2), OK without.
    req = api.PublishToSubjectRequest(subject=unique("nobody"), value=b"v")
    assert (await _status(client.publish_to_subject(req, timeout=0.5)))[0] == (
        Status.DEADLINE_EXCEEDED
    )
    r = await api.ApiStub(client.channel).publish_to_subject(req)
    assert not betterproto.serialized_on_wire(r.ack)

    # Ack errors come back in the ack, not as a status (PUBS-3).
    big = api.PublishToSubjectRequest(subject=subject, value=b"x" * (REPLICATION_BYTES_MAX + 1))
    r = await client.publish_to_subject(big, timeout=5)
    assert r.ack.ack_error == api.AckError.TOO_LARGE
    assert await _status(
        client.publish_to_subject(api.PublishToSubjectRequest(value=b"v"), timeout=5)
    ) == (Status.INVALID_ARGUMENT, "no subject provided")
