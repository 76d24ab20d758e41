"""AckRouter: acks for this server's inboxes, in process or over NATS."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lb import envelope
from lb.server.api import AckRouter


@dataclass
class _NatsMsg:  # the two attributes of nats.aio.msg.Msg the router reads
    subject: str
    data: bytes


def test_local_delivery_and_foreign_inboxes() -> None:
    router = AckRouter("ns.ack.s1")
    got: list[tuple[bytes, str | None, int]] = []
    inbox = router.new_inbox()
    assert inbox.startswith("ns.ack.s1.")
    router.route(inbox, lambda data, cid, err: got.append((data, cid, err)))
    assert router.deliver(inbox, b"ack", "c1", 0)
    assert got == [(b"ack", "c1", 0)]
    assert router.deliver("ns.ack.s1.gone", b"late", "c2", 0)  # ours, waiter gone: dropped
    assert not router.deliver("client.inbox", b"x", "c3", 0)  # not ours: publish on NATS
    assert not router.deliver("ns.ack.s10.x", b"x", "c3", 0)  # another server's prefix
    router.unroute(inbox)
    assert router.deliver(inbox, b"after", "c4", 0) and len(got) == 1


@pytest.mark.anyio
async def test_nats_delivery_leaves_decoding_to_the_handler() -> None:
    router = AckRouter("ns.ack.s1")
    got: list[tuple[bytes, str | None, int]] = []
    inbox = router.new_inbox()
    router.route(inbox, lambda data, cid, err: got.append((data, cid, err)))
    data = envelope.encode_ack(stream="s", offset=3, correlation_id="c", ack_inbox=inbox)
    await router.on_msg(_NatsMsg(inbox, data))
    await router.on_msg(_NatsMsg("ns.ack.s1.other", data))
    assert got == [(data, None, 0)]
    ack = envelope.decode_ack(got[0][0])
    assert ack is not None and (ack.offset, ack.correlation_id) == (3, "c")
