"""Fixtures for tests/client: one real ``lb serve`` process per test module.

Tests are ``anyio`` tests on the asyncio backend (the client is asyncio code) and use unique
stream names, so they share the module's server without interfering.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from lb.client import Client
from lb.testing.lb_process import LbProcess, running_lb

_names = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def lb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LbProcess]:
    with running_lb(tmp_path_factory.mktemp("lb")) as proc:
        yield proc


@pytest.fixture(scope="module")
def address(lb_server: LbProcess) -> str:
    return f"127.0.0.1:{lb_server.port}"


@pytest.fixture
def name() -> str:
    """A stream name unique within the test session."""
    return f"stream{next(_names)}"


@pytest.fixture
async def client(address: str) -> AsyncIterator[Client]:
    async with Client([address]) as c:
        yield c
