"""Fixtures for tests/compat: one real ``lb serve`` process per test module, reached by
clients lb did not write (gufo-liftbridge, raw grpcio stubs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lb.testing.lb_process import LbProcess, running_lb


@pytest.fixture(scope="module")
def lb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LbProcess]:
    with running_lb(tmp_path_factory.mktemp("lb")) as proc:
        yield proc
