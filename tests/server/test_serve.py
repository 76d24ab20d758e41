"""``python -m lb serve`` as a real process: health, signals, exit codes, NATS modes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from lb._proto.proto import ApiStub, SetCursorRequest
from lb.testing.lb_process import child_pids, new_lb_process, pid_alive, running_lb
from lb.testing.nats_server import running_nats_server


def _wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_embedded_nats_health_and_clean_exit(tmp_path: Path, signum: int) -> None:
    proc = new_lb_process(tmp_path).start()
    try:
        proc.wait_serving()
        children = child_pids(proc.pid)
        assert len(children) == 1, "the embedded nats-server child"
        started = time.monotonic()
        proc.signal(signum)
        assert proc.wait(timeout_s=5) == 0, proc.output()
        assert time.monotonic() - started < 5
        assert all(_wait_gone(pid) for pid in children), "nats-server child left behind"
        assert "Traceback" not in proc.output()
    finally:
        proc.stop()


def test_server_id_is_persisted(tmp_path: Path) -> None:
    with running_lb(tmp_path) as first:
        pass
    saved = (first.data_dir / "server.json").read_text()
    with running_lb(tmp_path) as second:
        pass
    assert (second.data_dir / "server.json").read_text() == saved
    server_id = saved.split('"')[3]
    # Both runs append to the same log: the same ID started twice.
    assert second.output().count(f"starting lb server {server_id}") == 2


def test_configured_server_id_conflict_is_a_config_error(tmp_path: Path) -> None:
    with running_lb(tmp_path, args=["--server-id", "alpha"]):
        pass
    proc = new_lb_process(tmp_path, args=["--server-id", "beta"]).start()
    try:
        assert proc.wait(timeout_s=20) == 2
        out = proc.output()
        assert "clustering.server.id" in out and "alpha" in out
        assert "Traceback" not in out
    finally:
        proc.stop()


def test_serve_with_external_nats_servers(tmp_path: Path) -> None:
    with running_nats_server() as nats_server, running_lb(
        tmp_path, args=["--nats-servers", nats_server.url, "--server-id", "ext1"]
    ) as proc:
        assert child_pids(proc.pid) == [], "no embedded child when servers are configured"
        assert "LIFT.liftbridge-default.ext1" in nats_server.connection_names()


def test_api_answers_unimplemented_for_unbuilt_rpcs(tmp_path: Path) -> None:
    async def call(port: int) -> GRPCError:
        channel = Channel("127.0.0.1", port)
        try:
            with pytest.raises(GRPCError) as err:
                await ApiStub(channel).set_cursor(SetCursorRequest(stream="s"))
            return err.value
        finally:
            channel.close()

    with running_lb(tmp_path) as proc:
        error = asyncio.run(call(proc.port))
    assert error.status == Status.UNIMPLEMENTED


def test_config_error_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("logging:\n  level: loud\n")
    for args in (["--config", str(tmp_path / "missing.yaml")], ["--config", str(bad)]):
        proc = subprocess.run(
            [sys.executable, "-m", "lb", "serve", *args],
            capture_output=True, text=True, timeout=30,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
    assert "logging.level" in proc.stderr


def test_console_script_matches_module(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "lb"
    assert script.exists(), "console script `lb` is installed with the package"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    mod = subprocess.run(
        [sys.executable, "-m", "lb", "--version"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == mod.returncode == 0
    assert out.stdout == mod.stdout and out.stdout.startswith("lb ")


def test_gzip_request_gets_unimplemented(tmp_path: Path) -> None:
    """grpclib cannot decompress; a gzip client gets a clear UNIMPLEMENTED, not UNKNOWN."""
    import grpc

    from lb._proto.proto import CreateStreamRequest

    with running_lb(tmp_path) as proc:
        with grpc.insecure_channel(
            f"127.0.0.1:{proc.port}", compression=grpc.Compression.Gzip
        ) as channel:
            call = channel.unary_unary(
                "/proto.API/CreateStream",
                request_serializer=bytes,
                response_deserializer=lambda b: b,
            )
            with pytest.raises(grpc.RpcError) as err:
                # Large and repetitive: gRPC core sends a message uncompressed when gzip
                # would not make it smaller.
                request = CreateStreamRequest(subject="foo", name="x" * 10_000)
                call(bytes(request), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "compressed" in (err.value.details() or "")
        # The server keeps serving after the bad request.
        proc.wait_serving(timeout_s=5)
