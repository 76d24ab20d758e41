#!/usr/bin/env python3
"""P8: failover under load. kill -9 of the partition leader until the next ALL ack, lb against
NATS JetStream R3 (issue 9, points 3 and 4).

One round, either system, on fresh servers (127.0.0.1, free ports, a temp dir):

* lb: one nats-server, three lb servers with the failover settings README.rst documents for
  under 2 s (:data:`LB_FAILOVER_CONFIG`), a stream with one partition and replicationFactor 3.
  JetStream: a 3-node nats-server cluster, a file stream with num_replicas 3.
* ``in_flight`` callers publish continuously, each one message at a time with AckPolicy ALL
  and a deadline of ``ack_timeout_s`` (lb: unary Publish; JetStream: ``js.publish``), rotating
  over the live servers (each server routes the message to the partition/stream leader).
* After ``warmup_s`` the leader (lb: FetchMetadata; JetStream: ``stream_info().cluster.leader``)
  is killed with SIGKILL (its whole process group). The callers stop using that server at once.
* The failover time is from the kill to the first ack of a message whose publish started after
  the kill. The callers keep publishing ``after_s`` longer, stop, and everything is read back
  from the new leader: every acked message must be there (``missing_acked_before_kill`` must be
  0: those were ALL-acked, so committed on every replica).

Measurement resolution: a caller whose publish failed (timed out at the deadline, or refused at
once) starts its next one in its own time slot: slots are ``ack_timeout_s / in_flight`` wide and
caller k owns every in_flight-th one from phase k. So while the leader is gone both systems are
probed at the same even cadence, one publish per slot, and the first publish after the new
leader can take one starts at most one slot late (50 ms with the defaults), on either system.

Run it from bench.py (``--workload P8``, ``--suite readme``) or alone:

    python tools/bench/failover_bench.py --vs-jetstream --rounds 5 --json p8.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # the repo root, for `lb` when not installed
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_servers as srv  # noqa: E402

# README.rst "Replication and failover": the settings for a failover within 2 s.
LB_FAILOVER_CONFIG: dict[str, str] = {
    "clustering.replica.max.leader.timeout": "1s",
    "clustering.replica.fetch.timeout": "250ms",
    "clustering.replica.max.idle.wait": "200ms",
    "clustering.replica.max.lag.time": "3s",
}
ACK_ALL = 1
SEQ_BYTES = 8
READBACK_TIMEOUT_S = 90.0
LEADER_TIMEOUT_S = 60.0
ERROR_SAMPLES_MAX = 2000
STOP_GRACE_S = 3.0  # on top of ack_timeout_s, for the callers' last calls to end
FIGURES = ("failover_s", "first_sent_after_kill_s", "msgs_per_s_before_kill", "acked",
           "missing_acked_before_kill", "missing_acked_after_kill", "errors_before_kill")


@dataclass(frozen=True)
class FailoverOptions:
    """What one P8 round does; the same for both systems."""

    in_flight: int = 10
    ack_timeout_s: float = 0.5
    message_size: int = 256
    warmup_s: float = 2.0
    after_s: float = 1.0
    recover_timeout_s: float = 60.0

    @property
    def slot_s(self) -> float:
        """Probe resolution while the leader is gone (see the module docstring)."""
        return self.ack_timeout_s / self.in_flight


_FILLER = bytes(i * 7 & 0xFF for i in range(1 << 16))


def payload(seq: int, size: int) -> bytes:
    """The message value: its sequence number (8 bytes, big-endian) and filler."""
    return seq.to_bytes(SEQ_BYTES, "big") + _FILLER[: max(0, size - SEQ_BYTES)]


def seq_of(value: bytes) -> int:
    return int.from_bytes(value[:SEQ_BYTES], "big")


# ------------------------------------------------------------------------------------------
# The publishers (system-independent)
# ------------------------------------------------------------------------------------------

PublishFn = Callable[[int, int, bytes], Awaitable[int]]  # (caller, seq, value) -> stored offset


@dataclass
class Publishers:
    """``in_flight`` callers publishing one message at a time each, continuously, until
    :meth:`stop`. Records every ack; after :meth:`killed` it watches for the first ack of a
    message sent after the kill. The records are bounded by the round's length (warm-up +
    at most ``recover_timeout_s`` + ``after_s``)."""

    publish: PublishFn
    opts: FailoverOptions
    sent_ns: dict[int, int] = field(default_factory=dict)
    acked_ns: dict[int, int] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (time ns, what), bounded
    error_count_before_kill: int = 0
    error_count_after_kill: int = 0
    kill_ns: int = 0
    first_after_kill: tuple[int, int, int] | None = None  # seq, sent ns, acked ns
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    started_ns: int = 0
    _next_seq: int = 0
    _stopping: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.started_ns = time.monotonic_ns()
        self._tasks = [asyncio.ensure_future(self._caller(k)) for k in range(self.opts.in_flight)]

    def killed(self, kill_ns: int) -> None:
        self.kill_ns = kill_ns

    async def stop(self) -> None:
        self._stopping = True
        _, pending = await asyncio.wait(self._tasks, timeout=self.opts.ack_timeout_s + STOP_GRACE_S)
        for t in pending:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _caller(self, k: int) -> None:
        while not self._stopping:
            seq = self._next_seq
            self._next_seq += 1
            value = payload(seq, self.opts.message_size)
            sent = time.monotonic_ns()
            self.sent_ns[seq] = sent
            try:
                await self.publish(k, seq, value)
            except Exception as exc:  # a failed publish is data here, not a crash
                # Counted by when it failed: before the kill, nothing should fail.
                if self.kill_ns:
                    self.error_count_after_kill += 1
                else:
                    self.error_count_before_kill += 1
                if len(self.errors) < ERROR_SAMPLES_MAX:
                    self.errors.append((time.monotonic_ns(), f"{type(exc).__name__}: {exc}"))
                await self._wait_own_slot(k, sent)
                continue
            acked = time.monotonic_ns()
            self.acked_ns[seq] = acked
            if self.kill_ns and sent >= self.kill_ns and self.first_after_kill is None:
                self.first_after_kill = (seq, sent, acked)
                self.recovered.set()

    async def _wait_own_slot(self, k: int, sent_ns: int) -> None:
        """Sleep until the next slot caller ``k`` owns after the one its failed publish started
        in (now, if we are in such a slot): at most one publish per own slot, so a caller
        whose publishes fail at once probes no more often than one that waits for deadlines."""
        n = self.opts.in_flight
        slot = self.opts.slot_s
        started = math.floor(sent_ns / 1e9 / slot)
        now = time.monotonic()
        i = math.floor(now / slot)
        if i % n == k % n and i > started:
            return
        j = max(i, started) + 1
        j += (k - j) % n
        await asyncio.sleep(max(0.0, j * slot - now))

    def acked_before(self, t_ns: int) -> int:
        return sum(1 for v in self.acked_ns.values() if v < t_ns)


# ------------------------------------------------------------------------------------------
# lb
# ------------------------------------------------------------------------------------------


class LbTarget:
    """gRPC channels to the three lb servers; publishes rotate over the live ones."""

    def __init__(self, procs: srv.Procs, stream: str, ack_timeout_s: float) -> None:
        from grpclib.client import Channel

        from lb.codec import PassthroughCodec

        self.procs = procs
        self.stream = stream
        self.ack_timeout_s = ack_timeout_s
        self.alive = sorted(procs.grpc_ports)
        self.channels = {n: Channel("127.0.0.1", p, codec=PassthroughCodec())
                         for n, p in procs.grpc_ports.items()}
        self._turn: dict[int, int] = {}

    def close(self) -> None:
        for ch in self.channels.values():
            ch.close()

    def drop(self, name: str) -> None:
        if name in self.alive:
            self.alive.remove(name)

    async def publish(self, k: int, seq: int, value: bytes) -> int:
        from grpclib.const import Cardinality

        from lb.codec import (
            PublishRequestFields,
            RawBytes,
            decode_publish_response,
            encode_publish_request,
        )

        turn = self._turn.get(k, 0)
        self._turn[k] = turn + 1
        name = self.alive[(k + turn) % len(self.alive)]
        req = encode_publish_request(PublishRequestFields(
            value=value, stream=self.stream, partition=0, correlation_id=str(seq),
            ack_policy=ACK_ALL, expected_offset=-1,
        ))
        async with self.channels[name].request(
            "/proto.API/Publish", Cardinality.UNARY_UNARY, RawBytes, RawBytes,
            timeout=self.ack_timeout_s,
        ) as call:
            await call.send_message(req, end=True)
            raw = await call.recv_message()
        if raw is None:
            raise RuntimeError("Publish: no reply")
        resp = decode_publish_response(raw)
        if resp.ack is None or resp.ack.ack_error:
            raise RuntimeError(f"Publish: ack error {resp.ack.ack_error if resp.ack else '-'}")
        return int(resp.ack.offset)

    async def _unary(self, name: str, method: str, request: Any, timeout_s: float = 5.0) -> Any:
        from grpclib.client import Channel

        from lb._proto.proto import ApiStub

        channel = Channel("127.0.0.1", self.procs.grpc_ports[name])
        try:
            return await getattr(ApiStub(channel), method)(request, timeout=timeout_s)
        finally:
            channel.close()

    async def leader(self, among: list[str] | None = None) -> str:
        """The partition leader as the first answering server among ``among`` sees it; ""
        when none answers or the leader is not one of ``among``."""
        from lb._proto import proto as api

        among = among or self.alive
        for name in among:
            try:
                md = await self._unary(name, "fetch_metadata",
                                       api.FetchMetadataRequest(streams=[self.stream]), 2.0)
            except Exception:
                continue
            parts = md.stream_metadata[0].partitions if md.stream_metadata else {}
            p = parts.get(0)
            if p is not None and p.leader in among:
                return str(p.leader)
        return ""

    def metadata_leader(self) -> str:
        """The metadata (Raft) leader as the servers last logged it; "" if they disagree."""
        seen = []
        for name in self.procs.grpc_ports:
            log = self.procs.base / f"{name}.log"
            with contextlib.suppress(OSError):
                found = re.findall(r"metadata leader is now (\S+)", log.read_text(errors="replace"))
                if found:
                    seen.append(found[-1])
        return seen[0] if seen and all(s == seen[0] for s in seen) else ""

    async def read_back(self, leader: str) -> tuple[set[int], int]:
        """Every message's seq from the leader, from EARLIEST to the newest offset; and the
        number of messages read."""
        from grpclib.const import Cardinality, Status
        from grpclib.exceptions import GRPCError

        from lb._proto import proto as api
        from lb.codec import RawBytes, decode_message

        req = bytes(api.SubscribeRequest(
            stream=self.stream, partition=0, start_position=api.StartPosition.EARLIEST,
            stop_position=api.StopPosition.STOP_LATEST,
        ))
        seqs: set[int] = set()
        count = 0
        call = self.channels[leader].request(
            "/proto.API/Subscribe", Cardinality.UNARY_STREAM, RawBytes, RawBytes,
            timeout=READBACK_TIMEOUT_S,
        )
        try:
            async with call:
                await call.send_message(req, end=True)
                if await call.recv_message() is None:  # the handshake
                    raise RuntimeError("Subscribe ended before its handshake")
                while True:
                    raw = await call.recv_message()
                    if raw is None:
                        break
                    seqs.add(seq_of(decode_message(raw).value))
                    count += 1
        except GRPCError as exc:
            if exc.status is not Status.RESOURCE_EXHAUSTED:  # STOP_LATEST's end
                raise
        return seqs, count


async def _lb_round(procs: srv.Procs, opts: FailoverOptions, out: dict[str, Any]) -> None:
    target = LbTarget(procs, srv.STREAM, opts.ack_timeout_s)
    try:
        await _drive(
            target, opts, procs, out,
            leader=target.leader,
            survivors_leader=lambda killed: target.leader(
                [n for n in procs.grpc_ports if n != killed]),
            read_back=target.read_back,
            meta_leader=lambda: asyncio.to_thread(target.metadata_leader),
        )
    finally:
        target.close()


# ------------------------------------------------------------------------------------------
# JetStream
# ------------------------------------------------------------------------------------------


class JsTarget:
    """One nats-py connection per nats-server; publishes rotate over the live ones."""

    def __init__(self, procs: srv.Procs, stream: str, subject: str, ack_timeout_s: float) -> None:
        self.procs = procs
        self.stream = stream
        self.subject = subject
        self.ack_timeout_s = ack_timeout_s
        self.alive = sorted(procs.nats_urls)
        self.conns: dict[str, Any] = {}
        self.js: dict[str, Any] = {}
        self._turn: dict[int, int] = {}

    async def open(self) -> None:
        import nats

        for name, url in self.procs.nats_urls.items():
            nc = await nats.connect(
                url, name=f"p8-{name}", allow_reconnect=True, max_reconnect_attempts=3,
                reconnect_time_wait=0.2, connect_timeout=5, error_cb=_quiet,
                disconnected_cb=_quiet_event, closed_cb=_quiet_event,
            )
            self.conns[name] = nc
            self.js[name] = nc.jetstream(timeout=self.ack_timeout_s)

    async def close(self) -> None:
        for nc in self.conns.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    def drop(self, name: str) -> None:
        if name in self.alive:
            self.alive.remove(name)

    async def publish(self, k: int, seq: int, value: bytes) -> int:
        turn = self._turn.get(k, 0)
        self._turn[k] = turn + 1
        name = self.alive[(k + turn) % len(self.alive)]
        ack = await self.js[name].publish(self.subject, value, timeout=self.ack_timeout_s)
        return int(ack.seq)

    async def leader(self, among: list[str] | None = None) -> str:
        """The stream leader as the first answering server among ``among`` sees it; "" when
        none answers or the leader is not one of ``among``. With every server alive, also
        "" until all replicas are current (a steady stream before the kill)."""
        full = among is None
        among = among or self.alive
        for name in among:
            try:
                info = await self.js[name].stream_info(self.stream)
            except Exception:
                continue
            leader = info.cluster.leader if info.cluster else ""
            replicas = (info.cluster.replicas or []) if info.cluster else []
            if leader in among and (not full or all(r.current for r in replicas)):
                return str(leader)
        return ""

    async def meta_leader(self) -> str:
        """The JetStream meta leader from a server's ``/jsz``."""
        for name, port in self.procs.monitor_ports.items():
            if name not in self.alive:
                continue
            try:
                body = await asyncio.to_thread(_http_get, f"http://127.0.0.1:{port}/jsz")
                return str(json.loads(body).get("meta_cluster", {}).get("leader", ""))
            except Exception:
                continue
        return ""

    async def read_back(self, leader: str) -> tuple[set[int], int]:
        """Every message's seq, read through an ephemeral pull consumer on ``leader``'s
        connection (consumer creation needs the meta leader: retried until there is one)."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        js = self.conns[leader].jetstream(timeout=10)
        deadline = time.monotonic() + READBACK_TIMEOUT_S
        while True:
            try:
                info = await js.stream_info(self.stream)
                psub = await js.pull_subscribe(
                    self.subject, stream=self.stream,
                    config=ConsumerConfig(ack_policy=AckPolicy.NONE,
                                          deliver_policy=DeliverPolicy.ALL),
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        want = int(info.state.messages)
        seqs: set[int] = set()
        count = 0
        try:
            while count < want:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"read back {count} of {want}")
                with contextlib.suppress(asyncio.TimeoutError):
                    for msg in await psub.fetch(min(1000, want - count), timeout=5):
                        seqs.add(seq_of(msg.data))
                        count += 1
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        return seqs, count


async def _quiet(exc: Exception) -> None:
    """nats-py logs every connection error by default; the killed server's are expected."""


async def _quiet_event() -> None:
    pass


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as r:  # 127.0.0.1 only
        return bytes(r.read())


async def _js_round(procs: srv.Procs, opts: FailoverOptions, out: dict[str, Any]) -> None:
    target = JsTarget(procs, srv.js_stream_name(0), srv.js_subject(0), opts.ack_timeout_s)
    try:
        await target.open()
        await _drive(
            target, opts, procs, out,
            leader=target.leader,
            survivors_leader=lambda killed: target.leader(
                [n for n in procs.nats_urls if n != killed]),
            read_back=target.read_back,
            meta_leader=target.meta_leader,
        )
    finally:
        await target.close()


# ------------------------------------------------------------------------------------------
# One round, either system
# ------------------------------------------------------------------------------------------


async def _wait_for(what: str, timeout_s: float, probe: Callable[[], Awaitable[Any]],
                    interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout_s:.0f} s")
        await asyncio.sleep(interval_s)


async def _drive(
    target: Any, opts: FailoverOptions, procs: srv.Procs, out: dict[str, Any], *,
    leader: Callable[[], Awaitable[str]],
    survivors_leader: Callable[[str], Awaitable[str]],
    read_back: Callable[[str], Awaitable[tuple[set[int], int]]],
    meta_leader: Callable[[], Awaitable[str]],
) -> None:
    """Warm up, kill the leader, wait for the first post-kill ack, read back, check; the
    figures go into ``out`` as they are known (so a failed round still shows them)."""
    pubs = Publishers(target.publish, opts)
    pubs.start()
    try:
        await _wait_for("ack while warming up", 30, lambda: _true(len(pubs.acked_ns) > 0))
        await asyncio.sleep(opts.warmup_s)  # steady load before the kill (a duration, by design)
        old = await _wait_for("partition leader", LEADER_TIMEOUT_S, leader)
        out["killed"] = old
        out["meta_leader_before_kill"] = await meta_leader()
        out["killed_was_meta_leader"] = out["meta_leader_before_kill"] == old
        kill_ns = time.monotonic_ns()
        os.killpg(procs.procs[old].pid, signal.SIGKILL)
        target.drop(old)
        pubs.killed(kill_ns)
        acked_at_kill = len(pubs.acked_ns)
        try:
            await asyncio.wait_for(pubs.recovered.wait(), opts.recover_timeout_s)
        except TimeoutError:
            out["problems"].append(
                f"no ack of a message sent after the kill within {opts.recover_timeout_s:.0f} s")
        await asyncio.sleep(opts.after_s)  # keep publishing on the new leader for a while
    finally:
        await pubs.stop()
    out["acked"] = len(pubs.acked_ns)
    out["acked_before_kill"] = pubs.acked_before(kill_ns)
    out["acked_after_kill_sent_after_kill"] = sum(
        1 for s in pubs.acked_ns if pubs.sent_ns[s] >= kill_ns)
    out["errors_before_kill"] = pubs.error_count_before_kill
    out["errors_after_kill"] = pubs.error_count_after_kill
    out["error_kinds"] = dict(Counter(e.split(":", 1)[0] for _, e in pubs.errors))
    out["error_samples"] = [f"{(t - kill_ns) / 1e9:+.3f}s {e}" for t, e in pubs.errors[:4]]
    span_s = (kill_ns - pubs.started_ns) / 1e9
    out["msgs_per_s_before_kill"] = acked_at_kill / span_s if span_s > 0 else 0.0
    if pubs.first_after_kill is not None:
        seq, sent, acked = pubs.first_after_kill
        out["failover_s"] = (acked - kill_ns) / 1e9
        out["first_sent_after_kill_s"] = (sent - kill_ns) / 1e9
        out["first_seq_after_kill"] = seq
    new = await _wait_for("new leader", LEADER_TIMEOUT_S,
                          lambda: survivors_leader(out["killed"]))
    out["new_leader"] = new
    out["leader_changed"] = bool(new) and new != out["killed"]
    stored, count = await read_back(new)
    out["read_back"] = count
    missing = [s for s in pubs.acked_ns if s not in stored]
    out["missing_acked_before_kill"] = sum(1 for s in missing if pubs.acked_ns[s] < kill_ns)
    out["missing_acked_after_kill"] = len(missing) - out["missing_acked_before_kill"]
    out["missing_sample"] = sorted(missing)[:10]
    if missing:
        out["problems"].append(f"{len(missing)} acked messages missing on the new leader "
                               f"({out['missing_acked_before_kill']} acked before the kill)")
    if not out["leader_changed"]:
        out["problems"].append("the leader did not change")


async def _true(v: bool) -> bool:
    return v


def run_round(kind: str, opts: FailoverOptions, tmp: Path, label: str = "",
              keep_failed: Path | None = None) -> dict[str, Any]:
    """One P8 round on fresh servers; every process started here is stopped here. A failed
    round's data dirs and logs are copied to ``keep_failed`` (if given) for a post-mortem."""
    case_dir = Path(tempfile.mkdtemp(prefix=f"p8-{kind}-", dir=tmp))
    out: dict[str, Any] = {"system": kind, "ok": False, "problems": []}
    procs: srv.Procs | None = None
    t0 = time.monotonic()
    try:
        if kind == "lb":
            procs = srv.start_lb(case_dir, 3, dict(LB_FAILOVER_CONFIG))
            srv.setup_lb(procs, 1, 3)
            asyncio.run(_lb_round(procs, opts, out))
        else:
            procs = srv.start_jetstream(case_dir, 3, sync_always=False, monitor=True)
            srv.setup_jetstream(procs, 1, 3)
            asyncio.run(_js_round(procs, opts, out))
    except Exception as exc:
        out["problems"].append(f"{type(exc).__name__}: {exc}")
    finally:
        if procs is not None:
            procs.stop()
            if out["problems"]:
                out["logs"] = procs.logs_tail()
        if out["problems"] and keep_failed is not None:
            kept = keep_failed / case_dir.name
            shutil.copytree(case_dir, kept, dirs_exist_ok=True)
            out["kept"] = str(kept)
        subprocess.run(["rm", "-rf", str(case_dir)], check=False)
    out["ok"] = not out["problems"]
    out["round_s"] = time.monotonic() - t0
    if label:
        fo = out.get("failover_s")
        print(f"  {label}: " + (f"failover {fo:.3f} s" if fo is not None else "no failover")
              + f", killed {out.get('killed', '?')}"
              + (" (also the metadata leader)" if out.get("killed_was_meta_leader") else "")
              + f" -> {out.get('new_leader', '?')}, acked {out.get('acked', 0)}, acked missing "
              f"{out.get('missing_acked_before_kill', '?')} (before the kill) "
              f"{out.get('missing_acked_after_kill', '?')} (after)"
              + ("" if out["ok"] else "  FAILED: " + "; ".join(out["problems"])), flush=True)
    return out


def run_p8(systems: list[str], rounds: int, tmp: Path, opts: FailoverOptions,
           keep_failed: Path | None = None) -> dict[str, Any]:
    """P8 on every system, interleaved round by round; medians (over the rounds that passed
    every check) and lb/JetStream ratios."""
    per: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for r in range(rounds):
        for s in systems:
            per[s].append(run_round(s, opts, tmp, f"P8 {s} r{r + 1}/{rounds}", keep_failed))
    med: dict[str, dict[str, float]] = {}
    for s in systems:
        m: dict[str, float] = {}
        for f in FIGURES:
            vals = [c[f] for c in per[s] if c["ok"] and f in c]
            if vals:
                m[f] = statistics.median(vals)
        fo = [c["failover_s"] for c in per[s] if c["ok"] and "failover_s" in c]
        if fo:
            m["failover_max_s"] = max(fo)
            m["failover_min_s"] = min(fo)
        med[s] = m
    if "lb" in med and "js" in med and med["js"].get("failover_s"):
        med["lb/js"] = {"failover_s": med["lb"].get("failover_s", math.nan)
                        / med["js"]["failover_s"]}
    return {
        "workload": {"name": "P8", **asdict(opts), "slot_s": opts.slot_s,
                     "lb_config": LB_FAILOVER_CONFIG},
        "rounds": per,
        "medians": {"failover": med},
        "ok": all(c["ok"] for cs in per.values() for c in cs),
    }


def print_p8(summary: dict[str, Any], out: Any = sys.stdout) -> None:
    wl = summary["workload"]
    print(f"\n== P8: kill -9 of the partition/stream leader -> first ALL ack of a message sent "
          f"after the kill; {wl['in_flight']} callers, deadline {wl['ack_timeout_s']} s, "
          f"resolution {wl['slot_s'] * 1e3:.0f} ms, {wl['message_size']} B", file=out)
    med = summary["medians"]["failover"]
    for s, cases in summary["rounds"].items():
        each = ", ".join(f"{c['failover_s']:.3f}" if "failover_s" in c else "failed"
                         for c in cases)
        m = med.get(s, {})
        print(f"  {s:<3} median {m.get('failover_s', math.nan):.3f} s  (rounds: {each});  "
              f"load before the kill {m.get('msgs_per_s_before_kill', math.nan):,.0f} msg/s; "
              f"missing acked: {sum(c.get('missing_acked_before_kill', 0) for c in cases)} "
              f"before / {sum(c.get('missing_acked_after_kill', 0) for c in cases)} after "
              f"the kill; killed the metadata leader too in "
              f"{sum(1 for c in cases if c.get('killed_was_meta_leader'))}/{len(cases)}",
              file=out)
    if "lb/js" in med:
        print(f"  lb/js failover time ratio {med['lb/js']['failover_s']:.2f}", file=out)
    for s, cases in summary["rounds"].items():
        for k, c in enumerate(cases):
            if not c["ok"]:
                print(f"  FAILED {s} round {k + 1}: {'; '.join(c['problems'])}", file=out)
                print("    " + c.get("logs", "").replace("\n", "\n    "), file=out)


def p8_rst(summary: dict[str, Any]) -> str:
    """The P8 table for the README: medians, the ratio, every round."""
    med = summary["medians"]["failover"]
    lb, js = med.get("lb", {}), med.get("js", {})

    def sec(m: dict[str, float]) -> str:
        return f"{m['failover_s']:.2f}" if "failover_s" in m else "failed"

    def rounds(s: str) -> str:
        return ", ".join(f"{c['failover_s']:.2f}" if "failover_s" in c else "-"
                         for c in summary["rounds"].get(s, []))

    def lost(s: str) -> str:
        return str(sum(c.get("missing_acked_before_kill", 0)
                       + c.get("missing_acked_after_kill", 0)
                       for c in summary["rounds"].get(s, [])))

    ratio = med.get("lb/js", {}).get("failover_s")
    head = ("Workload", "lb s", "JetStream s", "ratio", "lb rounds s", "JS rounds s",
            "acked lost lb/JS")
    row = ("P8", sec(lb), sec(js), f"{ratio:.2f}" if ratio else "-", rounds("lb"),
           rounds("js"), f"{lost('lb')} / {lost('js')}")
    widths = [max(len(h), len(c)) for h, c in zip(head, row, strict=True)]
    sep = "  ".join("=" * w for w in widths)
    return "\n".join([
        sep, "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), sep,
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), sep,
    ])


def add_options(ap: argparse.ArgumentParser) -> None:
    """P8's command-line options (shared with bench.py)."""
    d = FailoverOptions()
    ap.add_argument("--p8-in-flight", type=int, default=d.in_flight,
                    help="P8: publishing callers, one message each at a time")
    ap.add_argument("--p8-ack-timeout", type=float, default=d.ack_timeout_s,
                    help="P8: publish deadline, s (resolution = this / in-flight)")
    ap.add_argument("--p8-warmup", type=float, default=d.warmup_s,
                    help="P8: seconds of load before the kill")
    ap.add_argument("--p8-after", type=float, default=d.after_s,
                    help="P8: seconds of load after the first post-kill ack")
    ap.add_argument("--p8-keep-failed", type=Path, metavar="DIR",
                    help="P8: copy a failed round's data dirs and logs into DIR")


def options_from(args: argparse.Namespace, message_size: int = 256) -> FailoverOptions:
    return FailoverOptions(in_flight=args.p8_in_flight, ack_timeout_s=args.p8_ack_timeout,
                           message_size=message_size, warmup_s=args.p8_warmup,
                           after_s=args.p8_after)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vs-jetstream", action="store_true")
    ap.add_argument("--jetstream-only", action="store_true")
    ap.add_argument("--rounds", type=int, default=None, help="default 3 with --vs-jetstream")
    ap.add_argument("--message-size", type=int, default=256)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--tmp", type=Path)
    add_options(ap)
    args = ap.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    systems = ["js"] if args.jetstream_only else (["lb", "js"] if args.vs_jetstream else ["lb"])
    rounds = args.rounds or (3 if args.vs_jetstream else 1)
    with tempfile.TemporaryDirectory(prefix="lb-p8-", dir=args.tmp) as tmp:
        summary = run_p8(systems, rounds, Path(tmp), options_from(args, args.message_size),
                         args.p8_keep_failed)
    print_p8(summary)
    if "js" in systems and "lb" in systems:
        print("\n" + p8_rst(summary))
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv[1:], "workloads": [summary],
                                         "ok": summary["ok"]}, indent=1, default=str))
    print(f"\n{'OK' if summary['ok'] else 'FAILED'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
