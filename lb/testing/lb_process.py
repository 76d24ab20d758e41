"""Run ``python -m lb serve`` as a real child process, for tests, chaos runs and benchmarks.

Each server gets its own data dir and a config file that binds gRPC to 127.0.0.1 on a free port.
Everything a test starts, it stops: :meth:`LbProcess.stop` ends the server (SIGTERM, then SIGKILL)
and checks its children are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lb.testing.nats_server import free_port

HEALTH_SERVING = 1  # grpc.health.v1.HealthCheckResponse.SERVING


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(p) for p in f.read().split())
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _health(port: int, service: str, timeout_s: float) -> int:
    from grpclib.client import Channel
    from grpclib.health.v1.health_grpc import HealthStub
    from grpclib.health.v1.health_pb2 import HealthCheckRequest

    channel = Channel("127.0.0.1", port)
    try:
        reply = await asyncio.wait_for(
            HealthStub(channel).Check(HealthCheckRequest(service=service)), timeout_s
        )
        return int(reply.status)
    finally:
        channel.close()


def health_status(port: int, service: str = "", timeout_s: float = 2.0) -> int | None:
    """grpc.health.v1 status of ``service`` on 127.0.0.1:port, or None if it does not answer."""
    try:
        return asyncio.run(_health(port, service, timeout_s))
    except Exception:  # refused, timed out, or grpclib errors while the server comes up
        return None


@dataclass
class LbProcess:
    """One ``python -m lb serve`` child process."""

    data_dir: Path
    port: int
    args: Sequence[str]
    config: dict[str, object]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    children: list[int] = field(default_factory=list)

    def start(self) -> LbProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.data_dir.parent / f"{self.data_dir.name}.yaml"
        cfg = {"listen": f"127.0.0.1:{self.port}", "data.dir": str(self.data_dir), **self.config}
        cfg_path.write_text(yaml.safe_dump(cfg))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lb", "serve", "--config", str(cfg_path), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_serving(self, timeout_s: float = 20.0) -> None:
        """Block until grpc.health.v1 reports SERVING for "" and "proto.API"."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"lb exited with {self.process.returncode} before serving:\n{self.output()}"
                )
            if (
                health_status(self.port, "") == HEALTH_SERVING
                and health_status(self.port, "proto.API") == HEALTH_SERVING
            ):
                self.children = child_pids(self.pid)
                return
            time.sleep(0.05)
        raise TimeoutError(f"lb not SERVING after {timeout_s}s:\n{self.output()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL; returns the exit code. Idempotent."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.children:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()
        return self.process.returncode


def new_lb_process(
    base_dir: Path,
    name: str = "lb",
    args: Sequence[str] = (),
    config: dict[str, object] | None = None,
    port: int | None = None,
) -> LbProcess:
    """An unstarted server with its own data dir under ``base_dir`` and a free gRPC port."""
    return LbProcess(
        data_dir=base_dir / name,
        port=port or free_port(),
        args=list(args),
        config=dict(config or {}),
        log_path=base_dir / f"{name}.log",
    )


@contextlib.contextmanager
def running_lb(
    base_dir: Path, name: str = "lb", args: Sequence[str] = (),
    config: dict[str, object] | None = None,
) -> Iterator[LbProcess]:
    """Start a server, wait until it is SERVING, and always stop it."""
    proc = new_lb_process(base_dir, name, args, config).start()
    try:
        proc.wait_serving()
        yield proc
    finally:
        proc.stop()
