"""One chaos run against real processes: start, traffic, seeded faults, heal, drain, check.

Why: issue 7 asks for proof that nothing acked is lost while servers die mid-replication. The
run starts 3 or 5 ``python -m lb serve`` processes (own data dirs) on one nats-server or a
3-node NATS cluster, creates replicated streams, runs :class:`Workload` (every publish path and
ack policy, consumers on replicas), applies the faults planned by
:func:`lb.testing.chaos_faults.plan_faults` one after another, heals everything, measures how
soon every partition takes an ALL ack again, drains (a final ALL marker per partition), stops
the servers cleanly, reads every replica's log from its files and hands the history to
:func:`lb.testing.chaos_checker.check`.

Everything the run starts, it stops, also on errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lb.testing.chaos_checker import CheckReport, check, summary
from lb.testing.chaos_faults import (
    SERVER_KINDS,
    FaultKind,
    FaultSpec,
    FaultTiming,
    choose,
    plan_faults,
)
from lb.testing.chaos_history import (
    ACKED,
    FaultEvent,
    History,
    PartitionFinal,
    PublishOp,
    ReplicaLog,
    StoredRecord,
    decode_payload,
    encode_payload,
)
from lb.testing.chaos_workload import StreamSpec, Workload, WorkloadConfig
from lb.testing.cluster import Cluster, wait_until
from lb.testing.nats_server import NatsServer, free_port, wait_for_port

NS = 1_000_000_000
SERVER_NAMES = ("a", "b", "c", "d", "e")


@dataclass
class ChaosConfig:
    seed: int
    duration_s: float = 60.0  # time spent injecting faults (traffic runs longer)
    servers: int = 3
    nats_servers: int = 1  # 3: a NATS cluster, and KILL_NATS faults become possible
    streams: int = 1
    partitions: int = 2
    replication_factor: int = 3
    kinds: tuple[FaultKind, ...] | None = None  # default: every kind the setup supports
    publish_interval_s: float = 0.05
    ack_timeout_s: float = 5.0
    writable_bound_s: float = 30.0
    lag_s: float = 2.0
    leader_timeout_s: float = 2.0
    work_dir: Path | None = None  # default: a temporary dir, removed unless keep
    keep: bool = False
    log: Any = None  # a callable(str) for progress lines; None: silent

    def fault_kinds(self) -> tuple[FaultKind, ...]:
        if self.kinds is not None:
            return self.kinds
        return SERVER_KINDS + ((FaultKind.KILL_NATS,) if self.nats_servers > 1 else ())


@dataclass
class ChaosResult:
    history: History
    report: CheckReport
    work_dir: Path
    plan: list[FaultSpec] = field(default_factory=list)
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON report: config, operations, acks, faults with times, losses, divergences,
        unavailability windows (record bodies are left out; the history file has them)."""
        h = self.history
        t0 = h.started_ns
        return {
            "seed": h.seed,
            "servers": h.servers,
            "duration_s": round(self.duration_s, 1),
            "work_dir": str(self.work_dir),
            "check": self.report.to_json(),
            "faults": [
                {
                    "index": f.index, "kind": f.kind, "targets": f.targets, "detail": f.detail,
                    "at_s": round((f.started_ns - t0) / NS, 3),
                    "healed_at_s": round((f.healed_ns - t0) / NS, 3) if f.healed_ns else None,
                    "recovered_at_s": (round((f.recovered_ns - t0) / NS, 3)
                                       if f.recovered_ns else None),
                    "inflight_at_start": f.inflight_at_start, "note": f.note,
                }
                for f in h.faults
            ],
            "plan": [
                {"index": s.index, "kind": str(s.kind), "gap_s": s.gap_s, "hold_s": s.hold_s}
                for s in self.plan
            ],
            "finals": [
                {
                    "partition": f"{f.stream}/{f.partition}", "leader": f.leader,
                    "replicas": f.replicas, "isr": f.isr, "marker_offset": f.marker_offset,
                    "logs": {n: {"leo": lg.next_offset, "hw": lg.hw} for n, lg in f.logs.items()},
                }
                for f in h.finals
            ],
            "leader_changes": [
                {"at_s": round((x.t_ns - t0) / NS, 3), "partition": f"{x.stream}/{x.partition}",
                 "leader": x.leader, "isr": x.isr, "via": x.via}
                for x in h.leaders
            ],
            "notes": h.notes[:200],
        }

    def summary(self) -> str:
        return summary(self.history, self.report) + f"\n  replay: --seed {self.history.seed}"


# ---------------------------------------------------------------------------------------
# NATS: one server or a small cluster whose members can be killed and restarted
# ---------------------------------------------------------------------------------------


@dataclass
class NatsNode:
    """One nats-server that can be killed and started again on the same ports."""

    port: int
    monitor_port: int
    cluster_port: int
    routes: list[int]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsNode:
        from lb.server.embedded_nats import nats_server_binary

        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port),
                "-m", str(self.monitor_port)]
        if self.routes:
            args += ["--cluster_name", "chaos", "-cluster",
                     f"nats://127.0.0.1:{self.cluster_port}",
                     "-routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def routes_up(self) -> int:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.monitor_port}/routez", timeout=2
            ) as resp:
                return int(json.loads(resp.read()).get("num_routes", 0))
        except Exception:
            return -1


def start_nats_nodes(count: int) -> list[NatsNode]:
    """``count`` nats-servers; with more than one, a full-mesh cluster whose routes are up."""
    cports = [free_port() for _ in range(count)]
    nodes = [
        NatsNode(free_port(), free_port(), cports[i],
                 [p for j, p in enumerate(cports) if j != i] if count > 1 else [])
        for i in range(count)
    ]
    try:
        for n in nodes:
            n.start()
        if count > 1:
            wait_until(lambda: all(n.routes_up() >= count - 1 for n in nodes), 20,
                       what="NATS cluster routes")
    except BaseException:
        for n in nodes:
            n.stop()
        raise
    return nodes


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


async def _publish_once(port: int, stream: str, partition: int, pid: str,
                        timeout_s: float) -> int | None:
    from grpclib.client import Channel

    from lb._proto.proto import AckPolicy, ApiStub, PublishRequest

    channel = Channel("127.0.0.1", port)
    try:
        resp = await asyncio.wait_for(ApiStub(channel).publish(
            PublishRequest(stream=stream, partition=partition, ack_policy=AckPolicy.ALL,
                           value=encode_payload(pid), correlation_id=pid),
            timeout=timeout_s), timeout_s + 1)
        return None if resp.ack.ack_error else int(resp.ack.offset)
    finally:
        channel.close()


class ChaosRun:
    """Owns the processes of one run. Use :func:`run_chaos`."""

    def __init__(self, cfg: ChaosConfig, base_dir: Path) -> None:
        self.cfg = cfg
        self.base_dir = base_dir
        self.names = list(SERVER_NAMES[: cfg.servers])
        self.history = History(cfg.seed, list(self.names), time.time_ns())
        self.nats_nodes: list[NatsNode] = []
        self.cluster: Cluster | None = None
        self.workload: Workload | None = None
        self.streams = [StreamSpec(f"chaos{i}", f"chaos.s{i}", cfg.partitions)
                        for i in range(cfg.streams)]
        self.paused: set[str] = set()
        self.plan: list[FaultSpec] = []

    def log(self, text: str) -> None:
        if self.cfg.log is not None:
            t = (time.time_ns() - self.history.started_ns) / NS
            self.cfg.log(f"[{t:7.1f}s] {text}")

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None
        return self.cluster

    def server_config(self) -> dict[str, object]:
        return {
            "nats.servers": [n.url for n in self.nats_nodes],
            "logging.level": "info",
            "clustering.replica.max.lag.time": f"{int(self.cfg.lag_s * 1000)}ms",
            "clustering.replica.max.leader.timeout": f"{int(self.cfg.leader_timeout_s * 1000)}ms",
            "clustering.replica.max.idle.wait": "200ms",
            "clustering.replica.fetch.timeout": "500ms",
        }

    # ------------------------------------------------------------------ setup

    def start(self) -> None:
        cfg = self.cfg
        self.nats_nodes = start_nats_nodes(cfg.nats_servers)
        first = self.nats_nodes[0]
        shim = NatsServer(first.process, first.port, first.monitor_port)  # type: ignore[arg-type]
        self.cluster = Cluster(self.base_dir, shim, namespace=f"chaos{cfg.seed % 100000}")
        for i, name in enumerate(self.names):
            args = ["--raft-bootstrap-seed"] if i == 0 else []
            self.c.add(name, args=args, config=self.server_config())
            if i == 0:
                self.c.servers[name].wait_serving(30)
        for name in self.names:
            self.c.servers[name].wait_serving(30)
        self.c.wait_leader(timeout_s=30)
        wait_until(lambda: len(self.metadata().brokers) == cfg.servers, 30, 0.2,
                   what="every broker in the metadata")
        from lb._proto.proto import CreateStreamRequest

        for s in self.streams:
            self.c.call(self.names[0], "create_stream", CreateStreamRequest(
                subject=s.subject, name=s.name, partitions=s.partitions,
                replication_factor=cfg.replication_factor))
        wait_until(self.all_isr_full, 30, 0.2, what="every partition with a full ISR")
        self.log(f"cluster up: servers {self.names}, NATS {len(self.nats_nodes)}, "
                 f"streams {[s.name for s in self.streams]} x{cfg.partitions} RF "
                 f"{cfg.replication_factor}")

    def metadata(self, via: str | None = None) -> Any:
        from lb._proto.proto import FetchMetadataRequest

        candidates = [via] if via else self.live_servers()
        last: Exception | None = None
        for name in candidates:
            try:
                return self.c.call(name, "fetch_metadata", FetchMetadataRequest(
                    streams=[s.name for s in self.streams]), timeout_s=3)
            except Exception as exc:  # that server is down or stopped: ask another
                last = exc
        raise RuntimeError(f"no server answered FetchMetadata: {last}")

    def partitions_md(self) -> dict[tuple[str, int], Any]:
        md = self.metadata()
        return {(sm.name, pid): pm for sm in md.stream_metadata
                for pid, pm in sm.partitions.items()}

    def all_isr_full(self) -> bool:
        try:
            parts = self.partitions_md()
        except Exception:
            return False
        want = self.cfg.streams * self.cfg.partitions
        return len(parts) == want and all(
            pm.leader and set(pm.isr) == set(pm.replicas) for pm in parts.values())

    def live_servers(self) -> list[str]:
        return [n for n in self.c.alive() if n not in self.paused]

    # ------------------------------------------------------------------ faults

    def resolve(self, spec: FaultSpec) -> tuple[list[str], str]:
        kind = spec.kind
        if kind in (FaultKind.KILL_PARTITION_LEADER, FaultKind.KILL_FOLLOWER):
            parts = self.partitions_md()
            keys = sorted(parts)
            key = keys[spec.pick % len(keys)]
            pm = parts[key]
            where = f"{key[0]}/{key[1]}"
            if kind is FaultKind.KILL_PARTITION_LEADER:
                return [pm.leader], f"leader of {where} (ISR {sorted(pm.isr)})"
            followers = [n for n in pm.replicas if n != pm.leader]
            return choose(followers, spec.pick), f"follower of {where} (leader {pm.leader})"
        if kind is FaultKind.FREEZE_FOLLOWERS_KILL_LEADER:
            parts = self.partitions_md()
            keys = sorted(parts)
            key = keys[spec.pick % len(keys)]
            pm = parts[key]
            followers = sorted(n for n in pm.isr if n != pm.leader)
            if not followers:
                raise ValueError(f"{key[0]}/{key[1]} has no follower in its ISR")
            return [pm.leader, *followers], (
                f"freeze followers {followers} of {key[0]}/{key[1]}, kill leader {pm.leader}")
        if kind is FaultKind.KILL_METADATA_LEADER:
            leader = self.c.wait_leader(self.live_servers(), timeout_s=15)
            return [leader], "metadata leader (from the servers' logs)"
        if kind is FaultKind.KILL_TWO:
            return choose(self.live_servers(), spec.pick, 2), "two servers at once"
        if kind is FaultKind.PAUSE:
            return choose(self.live_servers(), spec.pick), (
                f"SIGSTOP {spec.hold_s}s (lag {self.cfg.lag_s}s, leader timeout "
                f"{self.cfg.leader_timeout_s}s)")
        if kind is FaultKind.KILL_NATS:
            idx = spec.pick % len(self.nats_nodes)
            return [f"nats{idx}"], f"nats-server {self.nats_nodes[idx].url}"
        if kind is FaultKind.RESTART_ALL:
            return list(self.names), "SIGKILL every server, then start them all"
        raise ValueError(kind)

    def apply(self, kind: FaultKind, targets: list[str]) -> None:
        if kind is FaultKind.FREEZE_FOLLOWERS_KILL_LEADER:
            leader, followers = targets[0], targets[1:]
            for t in followers:
                self.c.servers[t].signal(signal.SIGSTOP)
                self.paused.add(t)
            # Less than the lag timeout: the followers stay in the ISR while the leader
            # appends a tail they do not have (a schedule duration, not a condition wait).
            time.sleep(min(1.0, self.cfg.lag_s / 2))
            self.c.servers[leader].signal(signal.SIGKILL)
            self.c.servers[leader].wait(10)
            for t in followers:
                self.c.servers[t].signal(signal.SIGCONT)
                self.paused.discard(t)
        elif kind is FaultKind.PAUSE:
            for t in targets:
                self.c.servers[t].signal(signal.SIGSTOP)
                self.paused.add(t)
        elif kind is FaultKind.KILL_NATS:
            for t in targets:
                self.nats_nodes[int(t[4:])].kill()
        else:
            for t in targets:  # SIGKILL all targets first: "at once" means no wait between
                self.c.servers[t].signal(signal.SIGKILL)
            for t in targets:
                self.c.servers[t].wait(10)

    def heal(self, kind: FaultKind, targets: list[str]) -> None:
        if kind is FaultKind.PAUSE:
            for t in targets:
                self.c.servers[t].signal(signal.SIGCONT)
                self.paused.discard(t)
        elif kind is FaultKind.KILL_NATS:
            for t in targets:
                self.nats_nodes[int(t[4:])].start()
        else:
            self.restart_dead()

    def restart_dead(self) -> None:
        dead = [n for n in self.names if n not in self.c.alive()]
        for n in dead:
            self.c.restart(n)
        for n in dead:
            self.c.servers[n].wait_serving(60)

    def wait_recovered(self, timeout_s: float = 30.0) -> bool:
        """Every server names the same metadata leader, and every partition has a live leader.

        The log-based leader check alone can pass on stale lines right after a kill, so the
        partition leaders (from FetchMetadata) must be live servers as well."""
        deadline = time.monotonic() + timeout_s

        def partitions_led() -> bool:
            try:
                parts = self.partitions_md()
            except Exception:
                return False
            live = set(self.live_servers())
            return bool(parts) and all(pm.leader in live for pm in parts.values())

        try:
            wait_until(partitions_led, max(0.1, deadline - time.monotonic()), 0.2,
                       what="live partition leaders")
            self.c.wait_leader(self.names, timeout_s=max(0.1, deadline - time.monotonic()))
            return True
        except TimeoutError:
            return False

    def inject(self, spec: FaultSpec) -> None:
        try:
            targets, detail = self.resolve(spec)
        except Exception as exc:
            self.history.note(f"fault {spec.index} {spec.kind}: no target ({exc})")
            self.log(f"fault {spec.index} {spec.kind}: skipped, no target ({exc})")
            return
        # Land the fault while publishes are in flight (bounded: traffic may be stalled).
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.history.inflight() > 0, 3.0, 0.001, what="a publish in flight")
        ev = self.history.add_fault(FaultEvent(
            spec.index, str(spec.kind), targets, detail, time.time_ns(),
            inflight_at_start=self.history.inflight()))
        self.apply(spec.kind, targets)
        self.log(f"fault {spec.index} {spec.kind} {targets}: {detail}; in flight "
                 f"{ev.inflight_at_start}; hold {spec.hold_s}s")
        time.sleep(spec.hold_s)  # the fault's duration is the point, not a wait for a condition
        self.heal(spec.kind, targets)
        ev.healed_ns = time.time_ns()
        if self.wait_recovered():
            ev.recovered_ns = time.time_ns()
            self.log(f"  healed; leaders live and agreed after "
                     f"{(ev.recovered_ns - ev.healed_ns) / NS:.1f}s")
        else:
            ev.note = "no agreed metadata leader or no live partition leaders 30s after healing"
            self.log(f"  healed, but not recovered within 30s: {ev.note}")

    # ------------------------------------------------------------------ end of run

    def heal_everything(self) -> None:
        for t in list(self.paused):
            self.c.servers[t].signal(signal.SIGCONT)
            self.paused.discard(t)
        for node in self.nats_nodes:
            if not node.alive():
                node.start()
        self.restart_dead()

    def probe(self, key: tuple[str, int], prefix: str, deadline: float) -> tuple[str, int] | None:
        """Publish ALL to one partition until one is acked; record every attempt."""
        n = 0
        while time.monotonic() < deadline:
            server = self.names[n % len(self.names)]
            pid = f"{prefix}{key[0]}-{key[1]}-{n}"
            n += 1
            op = self.history.add_op(PublishOp(pid, key[0], key[1], "grpc", "ALL", server,
                                               time.time_ns()))
            try:
                offset = asyncio.run(_publish_once(self.c.servers[server].port, key[0], key[1],
                                                   pid, 3.0))
            except Exception as exc:
                self.history.finish_op(op, "error", time.time_ns(), error=type(exc).__name__)
                time.sleep(0.1)
                continue
            if offset is None:
                self.history.finish_op(op, "error", time.time_ns(), error="ack error")
                continue
            self.history.finish_op(op, ACKED, time.time_ns(), offset=offset)
            return pid, offset
        return None

    def finish(self) -> None:
        cfg = self.cfg
        self.heal_everything()
        self.history.healed_ns = time.time_ns()
        self.log("all faults healed; probing writability")
        keys = [(s.name, p) for s in self.streams for p in range(s.partitions)]
        bound_deadline = time.monotonic() + cfg.writable_bound_s + 30
        for key in keys:
            if self.probe(key, "probe-", bound_deadline) is not None:
                self.history.writable_ns[f"{key[0]}/{key[1]}"] = time.time_ns()
        self.log(f"writable: { {k: round((v - self.history.healed_ns) / NS, 2) for k, v in self.history.writable_ns.items()} }")  # noqa: E501
        with contextlib.suppress(TimeoutError):
            wait_until(self.all_isr_full, 60, 0.25, what="full ISRs after healing")
        assert self.workload is not None
        self.history.traffic_ended_ns = time.time_ns()
        self.workload.stop_publishers(cfg.ack_timeout_s * 3 + 10)
        markers: dict[tuple[str, int], tuple[str, int]] = {}
        marker_deadline = time.monotonic() + 20
        for key in keys:
            if f"{key[0]}/{key[1]}" not in self.history.writable_ns:
                continue  # not writable at all: the checker reports it; no marker either
            got = self.probe(key, "marker-", marker_deadline)
            if got is not None:
                markers[key] = got
        self.log(f"markers: {markers}")
        # Consumers read up to the markers (bounded), then everything stops.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: all(
                self.workload.shared.consumed.get(f"{k[0]}/{k[1]}", 0) > m[1]  # type: ignore[union-attr]
                for k, m in markers.items()), 30, 0.1, what="consumers at the markers")
        self.workload.stop()
        parts = {}
        with contextlib.suppress(Exception):
            parts = self.partitions_md()
        # Let followers learn the final HW before the clean stop checkpoints it.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: self.replicas_at_markers(markers), 15, 0.2,
                       what="replicas at the markers")
        for name in self.names:
            code = self.c.servers[name].stop(20)
            if code not in (0, None):
                self.history.note(f"{name} did not stop cleanly (exit code {code})")
                self.log(f"{name} did not stop cleanly (exit code {code})")
        for key in keys:
            pm = parts.get(key)
            marker = markers.get(key, ("", -1))
            fin = PartitionFinal(key[0], key[1], pm.leader if pm else "",
                                 sorted(pm.replicas) if pm else [],
                                 sorted(pm.isr) if pm else [], {},
                                 marker_pid=marker[0], marker_offset=marker[1])
            for name in (pm.replicas if pm else self.names):
                lg = self.read_log(name, key)
                if lg is not None:
                    fin.logs[name] = lg
            self.history.finals.append(fin)
        self.history.ended_ns = time.time_ns()

    def replicas_at_markers(self, markers: dict[tuple[str, int], tuple[str, int]]) -> bool:
        from lb._proto.proto import FetchPartitionMetadataRequest

        for (stream, p), (_, off) in markers.items():
            for name in self.names:
                try:
                    r = self.c.call(name, "fetch_partition_metadata",
                                    FetchPartitionMetadataRequest(stream=stream, partition=p),
                                    timeout_s=2)
                except Exception:
                    continue  # only leaders answer; followers are checked by their logs
                if r.metadata.high_watermark < off:
                    return False
        return True

    def read_log(self, name: str, key: tuple[str, int]) -> ReplicaLog | None:
        from lb.storage import CommitLog

        path = self.c.servers[name].data_dir / "streams" / key[0] / str(key[1])
        if not path.exists():
            self.history.note(f"{name} has no log dir for {key[0]}/{key[1]}")
            return None
        lg = CommitLog.open(path)
        try:
            records = []
            offset = max(lg.oldest_offset, 0)
            while offset < lg.next_offset:
                batch = lg.read_records(offset, 1 << 20)
                if not batch:
                    break
                for r in batch:
                    records.append(StoredRecord(r.offset, r.timestamp_ns, r.leader_epoch,
                                                bytes(r.body), decode_payload(r.decode().value)))
                offset = batch[-1].offset + 1
            return ReplicaLog(name, lg.oldest_offset, lg.next_offset, lg.hw, records)
        finally:
            lg.close()

    def stop(self) -> None:
        if self.workload is not None:
            with contextlib.suppress(Exception):
                self.workload.stop(10)
        if self.cluster is not None:
            for t in list(self.paused):
                with contextlib.suppress(Exception):
                    self.c.servers[t].signal(signal.SIGCONT)
            for proc in self.c.servers.values():
                with contextlib.suppress(Exception):
                    proc.stop(10)
        for node in self.nats_nodes:
            node.stop()

    # ------------------------------------------------------------------ the whole run

    def run(self) -> None:
        cfg = self.cfg
        timing = FaultTiming(cfg.lag_s, cfg.leader_timeout_s)
        # Plan more than fits (recovery times vary); the deadline below cuts the rest.
        self.plan = plan_faults(cfg.seed, cfg.duration_s * 2, cfg.fault_kinds(), timing)
        self.log(f"seed {cfg.seed}: faults drawn (run in order until {cfg.duration_s:.0f}s have "
                 f"passed): {[str(s.kind) for s in self.plan]}")
        self.start()
        ports = {n: p.port for n, p in self.c.servers.items()}
        self.workload = Workload(self.history, WorkloadConfig(
            self.streams, ports, [n.url for n in self.nats_nodes],
            publish_interval_s=cfg.publish_interval_s, ack_timeout_s=cfg.ack_timeout_s),
            cfg.seed)
        self.workload.start()
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: sum(1 for op in self.history.ops[:500]
                                   if op.outcome == ACKED) >= 20, 20, 0.1, what="first acks")
        deadline = time.monotonic() + cfg.duration_s
        for spec in self.plan:
            if time.monotonic() + spec.gap_s + spec.hold_s > deadline and spec.index > 0:
                self.history.note(f"faults {spec.index}.. not run: past the duration")
                break
            time.sleep(spec.gap_s)  # traffic-only time between faults, part of the schedule
            self.inject(spec)
        if self.workload.errors:
            self.log(f"workload errors: {self.workload.errors}")
        self.finish()


def run_chaos(cfg: ChaosConfig) -> ChaosResult:
    """Run one chaos scenario and check it. Raises only for harness failures (the cluster did
    not come up); violations are in ``result.report``."""
    started = time.monotonic()
    own_dir = cfg.work_dir is None
    base = Path(tempfile.mkdtemp(prefix=f"lb-chaos-{cfg.seed}-")) if own_dir else cfg.work_dir
    assert base is not None
    base.mkdir(parents=True, exist_ok=True)
    run = ChaosRun(cfg, base)
    try:
        run.run()
    finally:
        run.stop()
    report = check(run.history, writable_bound_s=cfg.writable_bound_s)
    result = ChaosResult(run.history, report, base, run.plan, time.monotonic() - started)
    if own_dir and not cfg.keep and report.ok:
        shutil.rmtree(base, ignore_errors=True)
    return result
