"""Shared pytest fixtures; this section owns the test Redis server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from presence.embedded import EmbeddedRedis
from tests.cluster import LocalCluster
from tests.helpers import close_http, free_port


def _start_redis(data_dir: Path) -> EmbeddedRedis:
    # The port can be taken between free_port() and the server's bind.
    for attempt in range(3):
        server = EmbeddedRedis(data_dir, port=free_port())
        try:
            server.start()
        except RuntimeError:
            if attempt == 2:
                raise
        else:
            return server
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (redis://127.0.0.1:PORT/0) of a private Redis for the whole session."""
    server = _start_redis(tmp_path_factory.mktemp("redis-server"))
    assert server.url is not None
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _http_client() -> Iterator[None]:
    """Close the suite's shared HTTP client (tests.helpers.http) at the end."""
    yield
    close_http()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local Redis Cluster (3 primaries, 1 replica each) for the whole session,
    started only by the tests that ask for it (`REDIS_MODES`)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
