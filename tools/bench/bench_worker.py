#!/usr/bin/env python3
"""One benchmark client process: a publisher or a consumer, against lb or NATS JetStream.

Started by ``bench.py`` (never by hand) as ``python bench_worker.py '<json spec>'``. The
conversation with the parent is line-based on stdin/stdout so that several workers can start
their timed region together:

* the worker connects, prepares its messages, prints ``ready``;
* it waits for a ``go`` line on stdin, then runs, printing ``progress N`` about every 0.2 s;
* it prints ``result {json}`` and exits. Per-message latencies (ns, int64) go to the file named
  by ``spec["lat_file"]`` so the parent can compute exact percentiles over all workers.

Why separate processes: one Python client tops out near one core, so ``--concurrent N``
publishers need N processes to load the server; and the parent stays free to sample CPU.

The clients are deliberately thin (pre-encoded requests through ``lb.codec`` and a pass-through
grpclib codec; nats-py's own JetStream API) so that the figures are the servers', not the
clients'. Each result carries the worker's own CPU per message to show when a client was the
bottleneck anyway.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

PROGRESS_EVERY_S = 0.2
ACK_TIMEOUT_S = 30.0  # per message; a run that waits this long has failed
FETCH_BATCH = 1000

Spec = dict[str, Any]


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Recorder:
    """Send times, latencies and counters of one worker; bounded by the message count."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.sent_ns = array.array("q", bytes(8 * n))
        self.lat_ns = array.array("q", bytes(8 * n))
        self.done = 0
        self.errors = 0
        self.first_error = ""
        self.t0_ns = 0
        self.t1_ns = 0

    def error(self, text: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = text

    def latencies(self) -> array.array[int]:
        return array.array("q", (v for v in self.lat_ns if v > 0))


async def _progress(rec: Recorder, count: Callable[[], int]) -> None:
    last = -1
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        c = count()
        if c != last:
            _out(f"progress {c}")
            last = c


_CPU_AT_GO = [0.0]


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def _wait_go() -> None:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit("parent went away before go")
    _CPU_AT_GO[0] = _cpu_s()


def _payload(spec: Spec) -> bytes:
    size = int(spec["message_size"])
    seed = int(spec["worker"]) + 1
    return bytes((seed * 131 + i * 7) & 0xFF for i in range(size))


def _targets(spec: Spec, i: int) -> int:
    """The partition (index into spec["partitions"]) of this worker's i-th message."""
    return (i + int(spec["worker"])) % len(spec["partitions"])


# ------------------------------------------------------------------------------------------
# lb clients
# ------------------------------------------------------------------------------------------


def _lb_channels(spec: Spec) -> dict[int, Any]:
    """One grpclib channel per server that leads one of the partitions."""
    from grpclib.client import Channel

    from lb.codec import PassthroughCodec

    ports = sorted({int(p["grpc_port"]) for p in spec["partitions"]})
    return {port: Channel("127.0.0.1", port, codec=PassthroughCodec()) for port in ports}


def _lb_requests(spec: Spec, rec: Recorder) -> tuple[list[bytes], list[int]]:
    """Every PublishRequest of this worker, encoded before the clock starts, and the gRPC
    port of each one's partition leader."""
    from lb.codec import PublishRequestFields, encode_publish_request

    value = _payload(spec)
    policy = int(spec["ack_policy"])
    parts = spec["partitions"]
    out = []
    ports = []
    for i in range(rec.n):
        p = parts[_targets(spec, i)]
        ports.append(int(p["grpc_port"]))
        out.append(
            encode_publish_request(
                PublishRequestFields(
                    value=value,
                    stream=p["stream"],
                    partition=int(p["partition"]),
                    correlation_id=str(i),
                    ack_policy=policy,
                    expected_offset=-1,
                )
            )
        )
    return out, ports


def _check_response(rec: Recorder, raw: bytes) -> int:
    """Record one PublishResponse; returns the message index it acks (-1 if none)."""
    from lb.codec import decode_publish_response

    resp = decode_publish_response(raw)
    try:
        i = int(resp.correlation_id)
    except ValueError:
        rec.error(f"response with a foreign correlation id {resp.correlation_id!r}")
        return -1
    if resp.async_error_code is not None:
        rec.error(f"PublishAsyncError {resp.async_error_code}: {resp.async_error_message}")
    elif resp.ack is None or resp.ack.ack_error:
        rec.error(f"ack error {resp.ack.ack_error if resp.ack else 'missing'}")
    return i


async def lb_publish_async(spec: Spec, rec: Recorder) -> None:
    """PublishAsync: one bidi stream per leader, ``pub_batch`` messages in flight in all,
    acks matched by correlationId."""
    from grpclib.const import Cardinality

    from lb.codec import RawBytes

    requests, ports = _lb_requests(spec, rec)
    wants_ack = int(spec["ack_policy"]) != 2
    room = asyncio.Semaphore(int(spec["pub_batch"]))
    channels = _lb_channels(spec)
    calls: dict[int, Any] = {}
    try:
        for port, channel in channels.items():
            call = channel.request(
                "/proto.API/PublishAsync", Cardinality.STREAM_STREAM, RawBytes, RawBytes
            )
            await call.__aenter__()
            calls[port] = call
            await call.send_request()

        async def read(call: Any, want: int) -> None:
            sent, lat = rec.sent_ns, rec.lat_ns
            clock = time.perf_counter_ns
            got = 0
            while got < want:
                raw = await call.recv_message()
                if raw is None:
                    rec.error(f"PublishAsync stream ended after {got} of {want} acks")
                    return
                i = _check_response(rec, raw)
                if 0 <= i < rec.n and lat[i] == 0:
                    lat[i] = clock() - sent[i]
                    got += 1
                    rec.done += 1
                    room.release()

        _out("ready")
        await _wait_go()
        rec.t0_ns = time.perf_counter_ns()
        readers = (
            [asyncio.ensure_future(read(c, ports.count(port))) for port, c in calls.items()]
            if wants_ack else []
        )
        clock = time.perf_counter_ns
        sent = rec.sent_ns
        for i, req in enumerate(requests):
            if wants_ack:
                await room.acquire()
            sent[i] = clock()
            await calls[ports[i]].send_message(req)
        for c in calls.values():
            await c.end()
        if readers:
            await asyncio.wait_for(asyncio.gather(*readers), ACK_TIMEOUT_S + rec.n / 1000)
        else:
            rec.done = rec.n
        rec.t1_ns = time.perf_counter_ns()
    finally:
        for c in calls.values():
            with contextlib.suppress(Exception):
                await c.__aexit__(None, None, None)
        for ch in channels.values():
            ch.close()


async def lb_grpc_publish(spec: Spec, rec: Recorder) -> None:
    """Unary Publish with a deadline (so the server waits for the ack), ``pub_batch`` callers
    each doing one call at a time."""
    from grpclib.const import Cardinality

    from lb.codec import RawBytes

    requests, ports = _lb_requests(spec, rec)
    channels = _lb_channels(spec)
    next_i = 0

    async def caller() -> None:
        nonlocal next_i
        clock = time.perf_counter_ns
        while next_i < rec.n:
            i = next_i
            next_i += 1
            t = clock()
            rec.sent_ns[i] = t
            try:
                async with channels[ports[i]].request(
                    "/proto.API/Publish", Cardinality.UNARY_UNARY, RawBytes, RawBytes,
                    timeout=ACK_TIMEOUT_S,
                ) as call:
                    await call.send_message(requests[i], end=True)
                    raw = await call.recv_message()
            except Exception as exc:  # a failed call is a counted error, not a crash
                rec.error(f"Publish failed: {exc!r}")
                continue
            rec.lat_ns[i] = clock() - t
            rec.done += 1
            if raw is None:
                rec.error("Publish: no reply")
            elif int(spec["ack_policy"]) != 2:
                from lb.codec import decode_publish_response

                resp = decode_publish_response(raw)
                if resp.ack is None or resp.ack.ack_error:
                    rec.error("Publish: no ack or ack error")

    try:
        _out("ready")
        await _wait_go()
        rec.t0_ns = time.perf_counter_ns()
        await asyncio.gather(*(caller() for _ in range(int(spec["pub_batch"]))))
        rec.t1_ns = time.perf_counter_ns()
    finally:
        for ch in channels.values():
            ch.close()


async def lb_nats_envelope(spec: Spec, rec: Recorder) -> None:
    """The NATS path: Liftbridge publish envelopes with an ack inbox, straight to the partition
    subjects; acks come back on the inbox as ack envelopes."""
    import nats

    from lb import envelope

    nc = await nats.connect(spec["nats_url"], name=f"bench-env-{spec['worker']}")
    try:
        inbox = f"_INBOX.bench.{os.getpid()}.{spec['worker']}"
        room = asyncio.Semaphore(int(spec["pub_batch"]))
        finished = asyncio.Event()
        policy = int(spec["ack_policy"])
        wants_ack = policy != 2

        async def on_ack(msg: Any) -> None:
            ack = envelope.decode_ack(msg.data)
            if ack is None:
                rec.error("undecodable ack")
                return
            try:
                i = int(ack.correlation_id)
            except ValueError:
                rec.error(f"ack with foreign correlation id {ack.correlation_id!r}")
                return
            if ack.ack_error:
                rec.error(f"ack error {ack.ack_error}")
            if 0 <= i < rec.n and rec.lat_ns[i] == 0:
                rec.lat_ns[i] = time.perf_counter_ns() - rec.sent_ns[i]
                rec.done += 1
                room.release()
                if rec.done == rec.n:
                    finished.set()

        await nc.subscribe(inbox, cb=on_ack, pending_msgs_limit=1_000_000)
        value = _payload(spec)
        parts = spec["partitions"]
        datas = []
        subjects = []
        for i in range(rec.n):
            p = parts[_targets(spec, i)]
            subjects.append(p["subject"])
            datas.append(
                envelope.encode_publish(
                    value=value, ack_inbox=inbox if wants_ack else "", correlation_id=str(i),
                    ack_policy=policy,
                )
            )
        await nc.flush()
        _out("ready")
        await _wait_go()
        rec.t0_ns = time.perf_counter_ns()
        clock = time.perf_counter_ns
        for i in range(rec.n):
            if wants_ack:
                await room.acquire()
            rec.sent_ns[i] = clock()
            await nc.publish(subjects[i], datas[i])
        if wants_ack:
            await nc.flush()
            await asyncio.wait_for(finished.wait(), ACK_TIMEOUT_S + rec.n / 1000)
        else:
            await nc.flush()
            rec.done = rec.n
        rec.t1_ns = time.perf_counter_ns()
    finally:
        await nc.close()


def _skip_handshake(first: bytes | None) -> None:
    if first is None:
        raise RuntimeError("Subscribe ended before its handshake")


async def lb_consume(spec: Spec, rec: Recorder) -> None:
    """Subscribe from EARLIEST with STOP_LATEST on every partition at once (one task each);
    checks that offsets arrive in order with no gap."""
    from grpclib.const import Cardinality, Status
    from grpclib.exceptions import GRPCError

    from lb._proto import proto as api
    from lb.client.rawstream import batch_receiver
    from lb.codec import RawBytes
    from lb.protowire import decode_varint

    channels = _lb_channels(spec)
    expected = [int(p["count"]) for p in spec["partitions"]]

    async def one(k: int, p: dict[str, Any]) -> None:
        req = bytes(
            api.SubscribeRequest(
                stream=p["stream"], partition=int(p["partition"]),
                start_position=api.StartPosition.EARLIEST,
                stop_position=api.StopPosition.STOP_LATEST,
            )
        )
        want = expected[k]
        got = 0
        call = channels[int(p["grpc_port"])].request(
            "/proto.API/Subscribe", Cardinality.UNARY_STREAM, RawBytes, RawBytes
        )
        try:
            async with call:
                await call.send_message(req, end=True)
                _skip_handshake(await call.recv_message())
                nxt = 0
                recv = batch_receiver(call)  # grpclib's per-message work skipped
                while True:  # STOP_LATEST: the server ends the stream after the last one
                    batch = await recv()
                    if batch is None:
                        break
                    for raw in batch:
                        off = decode_varint(raw, 1)[0] if raw[:1] == b"\x08" else 0
                        if off != nxt:
                            rec.error(f"partition {k}: offset {off}, expected {nxt}")
                        nxt = off + 1
                    got += len(batch)
                    rec.done += len(batch)
        except GRPCError as exc:
            if exc.status is not Status.RESOURCE_EXHAUSTED:  # the STOP_LATEST end
                rec.error(f"Subscribe failed: {exc!r}")
        if got != want:
            rec.error(f"partition {k}: received {got} of {want}")

    try:
        _out("ready")
        await _wait_go()
        rec.t0_ns = time.perf_counter_ns()
        await asyncio.gather(*(one(k, p) for k, p in enumerate(spec["partitions"])))
        rec.t1_ns = time.perf_counter_ns()
    finally:
        for ch in channels.values():
            ch.close()


# ------------------------------------------------------------------------------------------
# NATS clients (JetStream, and raw publishing into either system)
# ------------------------------------------------------------------------------------------


async def js_publish(spec: Spec, rec: Recorder) -> None:
    """JetStream publish: ``js.publish_async`` with ``pub_batch`` in flight (publish-async and
    nats-envelope paths), or ``pub_batch`` callers of the synchronous ``js.publish``
    (grpc-publish path); plain ``nc.publish`` for AckPolicy NONE."""
    import nats

    nc = await nats.connect(spec["nats_url"], name=f"bench-js-{spec['worker']}")
    try:
        pub_batch = int(spec["pub_batch"])
        js = nc.jetstream(timeout=ACK_TIMEOUT_S, publish_async_max_pending=pub_batch)
        value = _payload(spec)
        parts = spec["partitions"]
        subjects = [parts[_targets(spec, i)]["subject"] for i in range(rec.n)]
        policy = int(spec["ack_policy"])
        clock = time.perf_counter_ns
        if spec["path"] == "grpc-publish" and policy != 2:
            next_i = 0

            async def caller() -> None:
                nonlocal next_i
                while next_i < rec.n:
                    i = next_i
                    next_i += 1
                    t = clock()
                    rec.sent_ns[i] = t
                    try:
                        await js.publish(subjects[i], value)
                    except Exception as exc:
                        rec.error(f"js.publish failed: {exc!r}")
                        continue
                    rec.lat_ns[i] = clock() - t
                    rec.done += 1

            _out("ready")
            await _wait_go()
            rec.t0_ns = clock()
            await asyncio.gather(*(caller() for _ in range(pub_batch)))
            rec.t1_ns = clock()
            return
        if policy == 2:
            _out("ready")
            await _wait_go()
            rec.t0_ns = clock()
            for i in range(rec.n):
                await nc.publish(subjects[i], value)
            await nc.flush()
            rec.done = rec.n
            rec.t1_ns = clock()
            return

        def done_cb(i: int) -> Callable[[asyncio.Future[Any]], None]:
            def cb(fut: asyncio.Future[Any]) -> None:
                if fut.cancelled() or fut.exception() is not None:
                    rec.error(f"publish_async failed: {fut.exception()!r}")
                    return
                rec.lat_ns[i] = clock() - rec.sent_ns[i]
                rec.done += 1

            return cb

        await js._init_async_reply()  # the reply subscription, outside the timed region
        _out("ready")
        await _wait_go()
        rec.t0_ns = clock()
        for i in range(rec.n):
            rec.sent_ns[i] = clock()
            fut = await js.publish_async(subjects[i], value)
            fut.add_done_callback(done_cb(i))
        await asyncio.wait_for(js.publish_async_completed(), ACK_TIMEOUT_S + rec.n / 1000)
        rec.t1_ns = clock()
    finally:
        await nc.close()


async def js_consume(spec: Spec, rec: Recorder) -> None:
    """A pull consumer per stream (deliver all, no acks, like lb's Subscribe), all streams at
    once. It speaks the pull protocol directly: ``$JS.API.CONSUMER.MSG.NEXT`` requests for
    ``FETCH_BATCH`` messages, two outstanding, delivered to one plain NATS subscription. That is
    what ``sub.fetch()`` does, minus nats-py's per-batch futures and per-message metadata
    parsing, which made the client, not the server, the bottleneck (~25k msg/s at a full core).
    """
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    nc = await nats.connect(spec["nats_url"], name=f"bench-jsc-{spec['worker']}")
    try:
        js = nc.jetstream(timeout=ACK_TIMEOUT_S)
        finished = asyncio.Event()
        states = []
        for k, p in enumerate(spec["partitions"]):
            durable = f"bench{k}"
            await js.add_consumer(p["stream"], ConsumerConfig(
                durable_name=durable, ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
            ))
            states.append({
                "want": int(p["count"]), "got": 0, "requested": 0, "last": None,
                "next_subject": f"$JS.API.CONSUMER.MSG.NEXT.{p['stream']}.{durable}",
                "inbox": f"_INBOX.benchc.{os.getpid()}.{k}",
            })
        left = [sum(1 for st in states if st["want"] > 0)]
        if not left[0]:
            finished.set()

        async def pull(st: dict[str, Any]) -> None:
            n = min(FETCH_BATCH, st["want"] - st["requested"])
            if n <= 0:
                return
            st["requested"] += n
            body = json.dumps({"batch": n, "expires": int(ACK_TIMEOUT_S * 1e9)}).encode()
            await nc.publish(st["next_subject"], body, reply=st["inbox"])

        def handler(st: dict[str, Any]) -> Callable[[Any], Any]:
            async def cb(msg: Any) -> None:
                if msg.headers and msg.headers.get("Status"):  # 404/408/409 status messages
                    return
                st["got"] += 1
                rec.done += 1
                if st["got"] == st["want"]:
                    st["last"] = msg
                    left[0] -= 1
                    if not left[0]:
                        finished.set()
                elif st["requested"] - st["got"] <= FETCH_BATCH:
                    await pull(st)

            return cb

        for st in states:
            await nc.subscribe(st["inbox"], cb=handler(st), pending_msgs_limit=1_000_000)
        await nc.flush()
        _out("ready")
        await _wait_go()
        rec.t0_ns = time.perf_counter_ns()
        for st in states:
            await pull(st)
            await pull(st)
        await nc.flush()
        await asyncio.wait_for(finished.wait(), ACK_TIMEOUT_S + rec.n / 1000)
        rec.t1_ns = time.perf_counter_ns()
        for k, st in enumerate(states):
            if st["got"] != st["want"]:
                rec.error(f"stream {k}: received {st['got']} of {st['want']}")
            elif st["last"] is not None and st["last"].metadata.sequence.stream != st["want"]:
                rec.error(f"stream {k}: last sequence {st['last'].metadata.sequence.stream}")
    finally:
        await nc.close()


async def nats_raw(spec: Spec, rec: Recorder) -> None:
    """Plain NATS publishing (no envelope, no ack) at ``spec["rate"]`` msg/s (0: as fast as
    possible), into either system's stream subjects. Loss is checked by the parent."""
    import nats

    nc = await nats.connect(spec["nats_url"], name=f"bench-raw-{spec['worker']}")
    try:
        value = _payload(spec)
        parts = spec["partitions"]
        subjects = [parts[_targets(spec, i)]["subject"] for i in range(rec.n)]
        rate = float(spec.get("rate") or 0)
        _out("ready")
        await _wait_go()
        clock = time.perf_counter_ns
        t0 = rec.t0_ns = clock()
        i = 0
        while i < rec.n:
            due = rec.n if rate <= 0 else min(rec.n, int(rate * (clock() - t0) / 1e9) + 1)
            while i < due:
                await nc.publish(subjects[i], value)
                i += 1
            rec.done = i
            if i < rec.n:
                await asyncio.sleep(0.001)
        await nc.flush()
        rec.t1_ns = clock()
    finally:
        await nc.close()


RUNNERS = {
    ("lb", "publish-async"): lb_publish_async,
    ("lb", "grpc-publish"): lb_grpc_publish,
    ("lb", "nats-envelope"): lb_nats_envelope,
    ("lb", "consume"): lb_consume,
    ("lb", "nats-raw"): nats_raw,
    ("js", "publish-async"): js_publish,
    ("js", "grpc-publish"): js_publish,
    ("js", "nats-envelope"): js_publish,
    ("js", "consume"): js_consume,
    ("js", "nats-raw"): nats_raw,
}


async def run(spec: Spec) -> dict[str, Any]:
    rec = Recorder(int(spec["messages"]))
    runner = RUNNERS[(spec["system"], spec["op"] if spec["op"] != "publish" else spec["path"])]
    progress = asyncio.ensure_future(_progress(rec, lambda: rec.done))
    try:
        await runner(spec, rec)
    except Exception as exc:
        rec.error(f"{type(exc).__name__}: {exc}")
    finally:
        progress.cancel()
    if not rec.t1_ns:
        rec.t1_ns = time.perf_counter_ns()
    lat = rec.latencies()
    with open(spec["lat_file"], "wb") as f:
        lat.tofile(f)
    return {
        "worker": spec["worker"],
        "messages": rec.n,
        "done": rec.done,
        "errors": rec.errors,
        "first_error": rec.first_error,
        "t0_ns": rec.t0_ns,
        "t1_ns": rec.t1_ns,
        "latencies": len(lat),
        "cpu_s": _cpu_s() - _CPU_AT_GO[0],  # the timed region only
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = asyncio.run(run(spec))
    _out("result " + json.dumps(result))


if __name__ == "__main__":
    main()
