"""One server restarts on its data dir: the Raft log is replayed, optionally logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from lb._proto.proto import CreateStreamRequest, FetchMetadataRequest
from lb.testing.cluster import call
from lb.testing.lb_process import new_lb_process


@pytest.mark.parametrize("recovery", [True, False])
def test_restart_replays_metadata_and_logs_it_when_asked(tmp_path: Path, recovery: bool) -> None:
    config = {"logging.recovery": recovery}
    first = new_lb_process(tmp_path, config=config).start()
    try:
        first.wait_serving()
        for name in ("r1", "r2"):
            call(first.port, "create_stream", CreateStreamRequest(subject=name, name=name))
    finally:
        assert first.stop() == 0
    second = new_lb_process(tmp_path, config=config, port=first.port).start()
    try:
        second.wait_serving()
        md = call(second.port, "fetch_metadata", FetchMetadataRequest())
        assert {s.name for s in md.stream_metadata} == {"r1", "r2"}
    finally:
        second.stop()
    replay_lines = [
        line for line in second.output().splitlines() if "replayed metadata entry" in line
    ]
    if recovery:
        assert any("create_stream" in line for line in replay_lines), second.output()
    else:
        assert replay_lines == []
