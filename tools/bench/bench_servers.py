"""Start and stop the systems under test for bench.py: lb (1 or 3 servers on one nats-server)
and NATS JetStream (1 or 3 nats-servers), all on 127.0.0.1 and free ports.

Every process is started in its own session (process group) with PR_SET_PDEATHSIG, so that
:meth:`Procs.stop` can kill whole groups, and a bench killed with SIGKILL still takes its servers
with it. CPU is read from /proc/<pid>/stat (user + system, all threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lb.server.embedded_nats import nats_server_binary
from lb.testing.lb_process import HEALTH_SERVING, health_status
from lb.testing.nats_server import free_port, wait_for_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
_HANDED_OUT: set[int] = set()  # ports given to our servers so far (bounded by PORTS_MAX)
PORTS_MAX = 4096


def fresh_port() -> int:
    """A free port not handed out before by this process: ``free_port`` only asks the
    kernel, which can return a port again before the server that got it binds it (a cluster
    port and a monitor port once collided)."""
    if len(_HANDED_OUT) > PORTS_MAX:
        _HANDED_OUT.clear()
    for _ in range(100):
        port = free_port()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh port after 100 tries")
STREAM = "bench"


def _die_with_parent() -> None:  # runs in the forked child
    os.setsid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(args: list[str], log: Path | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    """Start a child in its own process group that dies with this process."""
    out: Any = subprocess.DEVNULL
    if log is not None:
        out = open(log, "ab")  # noqa: SIM115 - the child owns it; closed below
    try:
        return subprocess.Popen(
            args, stdout=kw.pop("stdout", out), stderr=kw.pop("stderr", subprocess.STDOUT
                                                                if log else subprocess.DEVNULL),
            preexec_fn=_die_with_parent, **kw,
        )
    finally:
        if log is not None:
            out.close()


def kill_group(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it; idempotent."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Procs:
    """The processes of one system under test and how clients reach it."""

    kind: str  # "lb" or "js"
    base: Path
    nats_url: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    grpc_ports: dict[str, int] = field(default_factory=dict)  # lb server id -> gRPC port
    nats_urls: dict[str, str] = field(default_factory=dict)  # nats-server name -> client URL
    monitor_ports: dict[str, int] = field(default_factory=dict)  # nats-server name -> HTTP port

    def cpu(self) -> dict[str, float]:
        return {name: cpu_s(p.pid) for name, p in self.procs.items()}

    def stop(self) -> None:
        # lb servers first (they hold NATS connections), the nats-server(s) last.
        for name, p in sorted(self.procs.items(), key=lambda kv: kv[0].startswith("nats")):
            kill_group(p)
            del name

    def logs_tail(self, chars: int = 3000) -> str:
        out = []
        for log in sorted(self.base.glob("*.log")):
            text = log.read_text(errors="replace")
            out.append(f"--- {log.name}\n{text[-chars:]}")
        return "\n".join(out)


# ------------------------------------------------------------------------------------------
# NATS / JetStream
# ------------------------------------------------------------------------------------------


def _nats_conf(
    path: Path, name: str, port: int, store: Path | None, sync_always: bool,
    cluster_port: int = 0, routes: list[int] | None = None, monitor_port: int = 0,
) -> Path:
    lines = [f"server_name: {name}", f"listen: 127.0.0.1:{port}", "max_payload: 8MB"]
    if monitor_port:
        lines.append(f"http: 127.0.0.1:{monitor_port}")
    if store is not None:
        js = [f'store_dir: "{store}"']
        if sync_always:
            js.append("sync_interval: always")
        lines.append("jetstream {\n  " + "\n  ".join(js) + "\n}")
    if cluster_port:
        rts = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes or [])
        lines.append(
            f"cluster {{\n  name: bench\n  listen: 127.0.0.1:{cluster_port}\n  routes: [{rts}]\n}}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def start_nats(base: Path, name: str, jetstream: bool, sync_always: bool = False,
               cluster_port: int = 0, routes: list[int] | None = None,
               monitor_port: int = 0) -> tuple[Any, int]:
    port = fresh_port()
    store = base / f"{name}-js" if jetstream else None
    conf = _nats_conf(base / f"{name}.conf", name, port, store, sync_always, cluster_port, routes,
                      monitor_port)
    proc = spawn([nats_server_binary(), "-c", str(conf)], log=base / f"{name}.log")
    return proc, port


def start_jetstream(base: Path, replicas: int, sync_always: bool, monitor: bool = False) -> Procs:
    """1 nats-server with JetStream, or a 3-node JetStream cluster for R3. ``monitor`` also
    opens each server's HTTP monitoring port (``/jsz`` names the meta leader; P8 uses it)."""
    procs = Procs("js", base)
    try:
        if replicas == 1:
            mport = fresh_port() if monitor else 0
            proc, port = start_nats(base, "nats", True, sync_always, monitor_port=mport)
            procs.procs["nats"] = proc
            procs.nats_urls["nats"] = f"nats://127.0.0.1:{port}"
            if mport:
                procs.monitor_ports["nats"] = mport
            wait_for_port(port)
            procs.nats_url = f"nats://127.0.0.1:{port}"
        else:
            cports = [fresh_port() for _ in range(3)]
            ports = []
            for k in range(3):
                mport = fresh_port() if monitor else 0
                proc, port = start_nats(base, f"nats{k}", True, sync_always, cports[k], cports,
                                        mport)
                procs.procs[f"nats{k}"] = proc
                procs.nats_urls[f"nats{k}"] = f"nats://127.0.0.1:{port}"
                if mport:
                    procs.monitor_ports[f"nats{k}"] = mport
                ports.append(port)
            for port in ports:
                wait_for_port(port)
            procs.nats_url = f"nats://127.0.0.1:{ports[0]}"
        return procs
    except BaseException:
        procs.stop()
        raise


async def _js_setup(url: str, partitions: int, replicas: int) -> None:
    import nats
    from nats.js.api import StorageType, StreamConfig

    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=5)  # retried below: a fresh cluster may not answer
        deadline = time.monotonic() + 30
        for k in range(partitions):
            while True:  # a fresh cluster needs a moment to elect its meta leader
                try:
                    await js.add_stream(StreamConfig(
                        name=js_stream_name(k), subjects=[js_subject(k)],
                        storage=StorageType.FILE, num_replicas=replicas,
                    ))
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
    finally:
        await nc.close()


def js_stream_name(k: int) -> str:
    return f"{STREAM}{k}"


def js_subject(k: int) -> str:
    return f"{STREAM}.js.{k}"


def setup_jetstream(procs: Procs, partitions: int, replicas: int) -> list[dict[str, Any]]:
    """One JetStream stream per lb partition; returns the workers' partition table."""
    asyncio.run(_js_setup(procs.nats_url, partitions, replicas))
    return [{"stream": js_stream_name(k), "partition": 0, "subject": js_subject(k)}
            for k in range(partitions)]


async def _js_counts(url: str, partitions: int) -> list[int]:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=10)
        return [int((await js.stream_info(js_stream_name(k))).state.messages)
                for k in range(partitions)]
    finally:
        await nc.close()


def js_counts(procs: Procs, partitions: int) -> list[int]:
    return asyncio.run(_js_counts(procs.nats_url, partitions))


# ------------------------------------------------------------------------------------------
# lb
# ------------------------------------------------------------------------------------------


def _lb_server(base: Path, name: str, nats_url: str, config: dict[str, Any]) -> tuple[Any, int]:
    port = fresh_port()
    data = base / name
    data.mkdir(parents=True, exist_ok=True)
    cfg = {
        "listen": f"127.0.0.1:{port}",
        "data.dir": str(data),
        "nats.servers": [nats_url],
        "clustering.namespace": "bench",
        "clustering.server.id": name,
        **config,
    }
    cfg_path = base / f"{name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = spawn([sys.executable, "-m", "lb", "serve", "--config", str(cfg_path)],
                 log=base / f"{name}.log")
    return proc, port


def _wait_serving(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lb exited with {proc.returncode} before serving")
        if (health_status(port, "") == HEALTH_SERVING
                and health_status(port, "proto.API") == HEALTH_SERVING):
            return
        time.sleep(0.05)
    raise TimeoutError(f"lb on port {port} not SERVING after {timeout_s}s")


def start_lb(base: Path, servers: int, config: dict[str, Any]) -> Procs:
    """One nats-server (no JetStream) and 1 or 3 lb servers on it."""
    from lb._proto import proto as api
    from lb.testing.cluster import call, wait_until

    procs = Procs("lb", base)
    try:
        nproc, nport = start_nats(base, "nats", jetstream=False)
        procs.procs["nats"] = nproc
        wait_for_port(nport)
        procs.nats_url = f"nats://127.0.0.1:{nport}"
        for k in range(servers):
            name = f"lb{k}"
            extra = {"clustering.raft.bootstrap.seed": True} if k == 0 else {}
            proc, port = _lb_server(base, name, procs.nats_url, {**config, **extra})
            procs.procs[name] = proc
            procs.grpc_ports[name] = port
            _wait_serving(proc, port)
        if servers > 1:
            port0 = procs.grpc_ports["lb0"]
            wait_until(
                lambda: len(call(port0, "fetch_metadata", api.FetchMetadataRequest()).brokers)
                == servers,
                timeout_s=60, what=f"{servers} brokers",
            )
        return procs
    except BaseException:
        procs.stop()
        raise


def lb_subject(k: int) -> str:
    return STREAM if k == 0 else f"{STREAM}.{k}"


def setup_lb(procs: Procs, partitions: int, replication_factor: int) -> list[dict[str, Any]]:
    """Create the stream and find each partition's leader; returns the partition table."""
    from lb._proto import proto as api
    from lb.testing.cluster import call, wait_until

    port0 = procs.grpc_ports["lb0"]
    call(port0, "create_stream", api.CreateStreamRequest(
        subject=STREAM, name=STREAM, partitions=partitions,
        replication_factor=replication_factor,
    ), timeout_s=30)
    by_id = procs.grpc_ports

    def leaders() -> list[str] | None:
        md = call(port0, "fetch_metadata", api.FetchMetadataRequest(streams=[STREAM]))
        if not md.stream_metadata:
            return None
        parts = md.stream_metadata[0].partitions
        out = []
        for k in range(partitions):
            p = parts.get(k)
            if p is None or p.leader not in by_id or len(p.isr) < replication_factor:
                return None
            out.append(p.leader)
        return out

    found = wait_until(leaders, timeout_s=60, what="partition leaders and full ISRs")
    table = []
    for k, leader in enumerate(found):
        port = by_id[leader]
        # The leader answers FetchPartitionMetadata once its partition is open.
        wait_until(lambda port=port, k=k: _partition_ready(port, k), timeout_s=30,
                   what=f"partition {k} open on its leader")
        table.append({"stream": STREAM, "partition": k, "subject": lb_subject(k),
                      "grpc_port": port})
    return table


def _partition_ready(port: int, k: int) -> bool:
    from lb._proto import proto as api
    from lb.testing.cluster import call

    try:
        call(port, "fetch_partition_metadata",
             api.FetchPartitionMetadataRequest(stream=STREAM, partition=k), timeout_s=5)
    except Exception:
        return False
    return True


def lb_counts(procs: Procs, table: list[dict[str, Any]]) -> list[int]:
    """Messages stored per partition (newest offset + 1) as each leader reports it."""
    from lb._proto import proto as api
    from lb.testing.cluster import call

    out = []
    for p in table:
        md = call(int(p["grpc_port"]), "fetch_partition_metadata",
                  api.FetchPartitionMetadataRequest(stream=STREAM, partition=int(p["partition"])))
        out.append(int(md.metadata.newest_offset) + 1)
    return out
