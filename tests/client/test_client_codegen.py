"""Typed-client generation: ``tools/gen_protos.py --out DIR`` makes a standalone betterproto
package from protos/api.proto, and that package (imported from a tmp dir under a unique module
name) creates a stream, publishes and subscribes against a running lb."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from grpclib.client import Channel

from lb.testing.lb_process import LbProcess

ROOT = Path(__file__).resolve().parents[2]


def generate(out: Path, *extra: str) -> Path:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_protos.py"), "--out", str(out), *extra],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def import_package(init: Path) -> ModuleType:
    name = f"lbgen_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    out = generate(tmp_path_factory.mktemp("gen"))
    return import_package(out / "proto" / "__init__.py")


def test_generated_client_publishes_and_subscribes(
    generated: ModuleType, lb_server: LbProcess
) -> None:
    g = generated
    assert not g.__name__.startswith("lb.")

    async def main() -> None:
        channel = Channel("127.0.0.1", lb_server.port)
        stub = g.ApiStub(channel)
        try:
            for _ in range(100):  # the fresh server may still be electing its metadata leader
                try:
                    await stub.create_stream(
                        g.CreateStreamRequest(subject="gen.subj", name="gen"), timeout=10
                    )
                    break
                except Exception as exc:  # grpclib GRPCError "no known metadata leader"
                    if "metadata leader" not in str(exc):
                        raise
                    await asyncio.sleep(0.05)
            for i in range(3):
                resp = await stub.publish(
                    g.PublishRequest(stream="gen", value=b"g%d" % i, key=b"k"), timeout=10
                )
                assert resp.ack.offset == i and resp.ack.stream == "gen"
            request = g.SubscribeRequest(
                stream="gen",
                start_position=g.StartPosition.EARLIEST,
                stop_position=g.StopPosition.STOP_LATEST,
            )
            got = []
            try:
                async for msg in stub.subscribe(request, timeout=10):
                    got.append(msg)
            except Exception as exc:  # the end of a stop position is ResourceExhausted
                assert "Stop offset reached" in str(exc)
            assert got[0] == g.Message()  # the handshake (SUB-3)
            assert [(m.offset, m.value, m.key) for m in got[1:]] == [
                (i, b"g%d" % i, b"k") for i in range(3)
            ]
            md = await stub.fetch_metadata(g.FetchMetadataRequest(streams=["gen"]))
            assert md.stream_metadata[0].partitions[0].newest_offset == 2
        finally:
            channel.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_package_name_option(tmp_path: Path) -> None:
    generate(tmp_path, "--package", "liftbridge_api")
    module = import_package(tmp_path / "liftbridge_api" / "__init__.py")
    assert hasattr(module, "ApiStub") and hasattr(module, "PublishAsyncErrorCode")
