"""Data left behind by deleted streams: a stream deleted while a server was down (or crashed
between the committed delete and removing the files), or deleted and created again under the
same name, must not come back with its old messages. Real lb processes and files."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from dataplane_kit import SERVER_ID, create, publish, read, restart, unique, with_client

from lb._proto import proto as api
from lb.server.partitions import INCARNATION_FILE, TRASH_DIR
from lb.testing.lb_process import new_lb_process
from lb.testing.nats_server import NatsServer


def _config(nats_server: NatsServer) -> dict[str, object]:
    return {
        "clustering.server.id": SERVER_ID,
        "clustering.raft.bootstrap.seed": True,
        "nats.servers": [nats_server.url],
    }


def _wait_gone(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while path.exists():
        assert time.monotonic() < deadline, f"{path} still exists"
        time.sleep(0.05)


def test_deleted_and_stale_stream_data_is_removed_on_start(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    keep, again = unique(), unique()
    proc = new_lb_process(tmp_path, config=_config(nats_server)).start()
    try:
        proc.wait_serving()

        async def before(c: api.ApiStub) -> None:
            await create(c, keep)
            await create(c, again)
            for i in range(3):
                await publish(c, keep, b"k%d" % i)
                await publish(c, again, b"old%d" % i)

        asyncio.run(with_client(proc.port, before))
        streams = Path(proc.data_dir) / "streams"
        marker = streams / again / "0" / INCARNATION_FILE
        assert marker.read_text().strip().isdigit()
        proc.signal(signal.SIGKILL)
        proc.wait(timeout_s=10)
        # What a crash leaves: a deleted stream's directory, half-emptied trash, and the log of
        # an earlier stream that had the name of a live one.
        ghost = streams / "ghost" / "0"
        ghost.mkdir(parents=True)
        (ghost / "00000000000000000000.log").write_bytes(b"x" * 100)
        (streams / TRASH_DIR / "ghost2.0.1").mkdir(parents=True)
        marker.write_text("12345\n")
        proc = restart(proc, signal.SIGTERM)
        _wait_gone(streams / "ghost")
        _wait_gone(streams / TRASH_DIR / "ghost2.0.1")

        async def after(c: api.ApiStub) -> None:
            msgs, _ = await read(c, keep)
            assert [m.value for m in msgs] == [b"k0", b"k1", b"k2"]
            md = await c.fetch_metadata(api.FetchMetadataRequest(streams=[again]))
            assert md.stream_metadata[0].partitions[0].newest_offset == -1
            assert (await publish(c, again, b"new")).ack.offset == 0
            msgs, _ = await read(c, again)
            assert [m.value for m in msgs] == [b"new"]

        asyncio.run(with_client(proc.port, after))
        assert marker.read_text().strip() != "12345"
        out = proc.output()
        assert "removing data of deleted streams: ghost" in out
        assert "earlier stream of the same name" in out
        assert "Traceback" not in out
    finally:
        proc.stop()
