"""Fixtures for the data-plane end-to-end tests.

One real nats-server and one ``python -m lb serve`` process per test module (module-scoped
fixtures), reached through the generated betterproto ``ApiStub`` over grpclib and through a
nats-py connection for raw NATS traffic. Tests are ``anyio`` tests on the asyncio backend and
use unique stream names, so they share the server without interfering.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import pytest
from dataplane_kit import SERVER_ID
from grpclib.client import Channel

from lb._proto import proto as api
from lb.testing.lb_process import LbProcess, new_lb_process
from lb.testing.nats_server import NatsServer, running_nats_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with running_nats_server() as server:
        yield server


@pytest.fixture(scope="module")
def lb_extra_config() -> dict[str, object]:
    """Override in a module to add server settings."""
    return {}


@pytest.fixture(scope="module")
def lb_server(
    tmp_path_factory: pytest.TempPathFactory,
    nats_server: NatsServer,
    lb_extra_config: dict[str, object],
) -> Iterator[LbProcess]:
    base = tmp_path_factory.mktemp("lb")
    config = {
        "clustering.server.id": SERVER_ID,
        "clustering.raft.bootstrap.seed": True,
        "nats.servers": [nats_server.url],
        **lb_extra_config,
    }
    proc = new_lb_process(base, config=config).start()
    try:
        proc.wait_serving()
        yield proc
    finally:
        proc.stop()
    out = proc.output()
    assert "Traceback" not in out, out[-5000:]


@pytest.fixture
async def client(lb_server: LbProcess) -> AsyncIterator[api.ApiStub]:
    channel = Channel("127.0.0.1", lb_server.port)
    try:
        yield api.ApiStub(channel, timeout=10)
    finally:
        channel.close()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Any]:
    conn = await nats.connect(nats_server.url)
    try:
        yield conn
    finally:
        await conn.close()
