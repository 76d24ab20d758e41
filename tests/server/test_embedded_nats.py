"""The embedded nats-server supervisor: start, restart after a crash, give up, stop cleanly."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import trio

from lb.server.embedded_nats import EmbeddedNats, EmbeddedNatsError
from lb.testing.lb_process import child_pids, new_lb_process, pid_alive


def _nats_info(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        return s.recv(4096)


async def _wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.02)


@pytest.mark.trio
async def test_start_restart_and_stop() -> None:
    embedded = EmbeddedNats(restart_max=3)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(embedded.run)
        stats = embedded.statistics()
        assert url == f"nats://127.0.0.1:{stats.port}"
        assert (await trio.to_thread.run_sync(_nats_info, stats.port)).startswith(b"INFO ")

        first_pid = embedded.kill_child_for_test()
        await _wait_for(
            lambda: embedded.statistics().starts == 2 and embedded._process is not None
        )
        restarted = embedded.statistics()
        assert restarted.pid != first_pid and restarted.unexpected_exits == 1
        assert restarted.port == stats.port, "restarts reuse the port so clients reconnect"

        async def accepting() -> None:
            with trio.fail_after(10):
                while True:
                    try:
                        info = await trio.to_thread.run_sync(_nats_info, stats.port)
                        assert info.startswith(b"INFO ")
                        return
                    except OSError:
                        await trio.sleep(0.05)

        await accepting()
        nursery.cancel_scope.cancel()
    assert not pid_alive(restarted.pid), "stopping the supervisor stops the child"


@pytest.mark.trio
async def test_gives_up_after_repeated_failures() -> None:
    embedded = EmbeddedNats(restart_max=1)
    with pytest.RaisesGroup(pytest.RaisesExc(EmbeddedNatsError, match="giving up")):
        async with trio.open_nursery() as nursery:
            await nursery.start(embedded.run)
            for expected_starts in (2, 3):
                embedded.kill_child_for_test()
                if expected_starts == 3:
                    break
                await _wait_for(
                    lambda n=expected_starts: embedded.statistics().starts == n
                    and embedded._process is not None
                )
            await trio.sleep_forever()
    assert not pid_alive(embedded.statistics().pid)


def test_serve_exits_1_when_embedded_nats_keeps_dying(tmp_path: Path) -> None:
    proc = new_lb_process(tmp_path, config={"nats.embedded.restart.max": 1}).start()
    try:
        proc.wait_serving()
        for _ in range(2):
            deadline = time.monotonic() + 10
            children: list[int] = []
            while not children and time.monotonic() < deadline:
                children = [p for p in child_pids(proc.pid) if pid_alive(p)]
                time.sleep(0.02)
            assert children, proc.output()
            os.kill(children[0], signal.SIGKILL)
            while pid_alive(children[0]) and time.monotonic() < deadline:
                time.sleep(0.02)
        assert proc.wait(timeout_s=15) == 1, proc.output()
        out = proc.output()
        assert "embedded nats-server exited 2 times" in out and "giving up" in out
        assert "Traceback" not in out
    finally:
        proc.stop()
