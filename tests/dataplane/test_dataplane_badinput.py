"""Hostile and malformed input over gRPC: every bad request gets a clear status, the server
keeps serving and nothing stored is lost (issue 5, point 6)."""

from __future__ import annotations

from typing import Any

import pytest
from dataplane_kit import create, publish, publish_async_stream, read, unique
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from lb import codec
from lb._proto import proto as api
from lb.testing.lb_process import LbProcess

pytestmark = pytest.mark.anyio

GARBAGE = [
    b"\xff\xff\xff",
    b"\x0a\x10abc",  # a length past the end
    b"\x28" + b"\xff" * 9 + b"\x01",  # a 10-byte varint where an enum goes
    b"\x07",  # an invalid wire type
]
UNARY = [
    "CreateStream", "DeleteStream", "PauseStream", "SetStreamReadonly", "FetchMetadata",
    "FetchPartitionMetadata", "Publish", "PublishToSubject",
]


async def _raw_call(port: int, method: str, card: Cardinality, payload: bytes) -> Any:
    channel = Channel("127.0.0.1", port, codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    try:
        async with channel.request(
            f"/proto.API/{method}", card, codec.RawBytes, codec.RawBytes, timeout=5
        ) as st:
            await st.send_message(payload, end=True)
            replies = []
            while (m := await st.recv_message()) is not None:
                replies.append(m)
            return replies
    except GRPCError as err:
        return err
    finally:
        channel.close()


async def test_garbage_requests_get_statuses(client: api.ApiStub, lb_server: LbProcess) -> None:
    name = unique()
    await create(client, name)
    await publish(client, name, b"keep")
    for method in [*UNARY, "Subscribe"]:
        card = Cardinality.UNARY_STREAM if method == "Subscribe" else Cardinality.UNARY_UNARY
        for payload in GARBAGE:
            result = await _raw_call(lb_server.port, method, card, payload)
            # betterproto reads some garbage as a (mostly empty) request; either way the answer
            # is a status the client can act on, never an internal error.
            if isinstance(result, GRPCError):
                assert result.status in (
                    Status.INVALID_ARGUMENT, Status.NOT_FOUND, Status.FAILED_PRECONDITION,
                    Status.DEADLINE_EXCEEDED, Status.RESOURCE_EXHAUSTED,
                ), (method, payload, result)
                assert result.message != "Internal Server Error", (method, payload)
    msgs, _ = await read(client, name)
    assert [m.value for m in msgs] == [b"keep"]
    assert "Traceback" not in lb_server.output()


async def test_garbage_in_publish_async_is_a_per_message_error(
    client: api.ApiStub, lb_server: LbProcess
) -> None:
    name = unique()
    await create(client, name)
    channel = Channel("127.0.0.1", lb_server.port, codec=codec.PassthroughCodec())  # type: ignore[arg-type]
    try:
        async with channel.request(
            "/proto.API/PublishAsync", Cardinality.STREAM_STREAM, codec.RawBytes,
            codec.RawBytes, timeout=10,
        ) as st:
            await st.send_message(b"\x0a\x10abc")
            bad = codec.decode_publish_response(await st.recv_message())
            assert bad.async_error_code == api.PublishAsyncErrorCode.BAD_REQUEST
            assert bad.async_error_message.startswith("bad request: ")
            good = codec.PublishRequestFields(stream=name, value=b"ok", correlation_id="g")
            await st.send_message(codec.encode_publish_request(good))
            ok = codec.decode_publish_response(await st.recv_message())
            assert ok.correlation_id == "g" and ok.ack is not None and ok.ack.offset == 0
            await st.end()
    finally:
        channel.close()


async def test_oversized_and_odd_requests(client: api.ApiStub) -> None:
    name = unique()
    await create(client, name)
    # Larger than the NATS max payload (1 MiB): a clear Unknown status, as Liftbridge.
    with pytest.raises(GRPCError) as err:
        await publish(client, name, b"x" * (3 * 1024 * 1024))
    assert err.value.status == Status.UNKNOWN
    assert (err.value.message or "").startswith("failed to publish to NATS: ")
    async with publish_async_stream(client) as st:
        await st.send_message(
            api.PublishRequest(stream=name, value=b"x" * (2 * 1024 * 1024), correlation_id="b")
        )
        resp = await st.recv_message()
        assert resp is not None and resp.async_error.code == api.PublishAsyncErrorCode.INTERNAL
        assert resp.async_error.message.startswith("failed to publish to NATS: ")
        await st.end()
    # Odd but valid: empty values and keys, many headers, unicode subjects in headers.
    headers = {f"h{i}": b"v" * i for i in range(200)}
    r = await publish(client, name, b"", headers=headers)
    assert r.ack.offset == 0
    (m,), _ = await read(client, name)
    assert m.value == b"" and m.headers["h199"] == b"v" * 199
    # Unknown targets everywhere.
    for call in [
        client.pause_stream(api.PauseStreamRequest(name=unique())),
        client.set_stream_readonly(api.SetStreamReadonlyRequest(name=unique())),
        client.delete_stream(api.DeleteStreamRequest(name=unique())),
        client.fetch_partition_metadata(
            api.FetchPartitionMetadataRequest(stream=name, partition=-5)
        ),
    ]:
        with pytest.raises(GRPCError) as err:
            await call
        assert err.value.status == Status.NOT_FOUND


async def test_requests_over_the_grpc_receive_limit(client: api.ApiStub) -> None:
    """WIRE-5: gRPC's 4 MiB receive limit, with grpc-go's status and text; the server goes on."""
    name = unique()
    await create(client, name)
    big = b"x" * (5 * 1024 * 1024)
    with pytest.raises(GRPCError) as err:
        await publish(client, name, big)
    assert err.value.status == Status.RESOURCE_EXHAUSTED
    assert (err.value.message or "").startswith("grpc: received message larger than max (")
    assert (err.value.message or "").endswith(" vs. 4194304)")
    with pytest.raises(GRPCError) as err:
        async with publish_async_stream(client) as st:
            await st.send_message(api.PublishRequest(stream=name, value=big, correlation_id="c"))
            await st.recv_message()
    assert err.value.status == Status.RESOURCE_EXHAUSTED
    assert (await publish(client, name, b"fine")).ack.offset == 0
