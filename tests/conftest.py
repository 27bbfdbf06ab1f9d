"""Shared pytest fixtures; this section owns the test Redis server, and how
the tests are shared out among pytest-xdist's workers (scripts/test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from presence.embedded import EmbeddedRedis
from tests.cluster import LocalCluster
from tests.helpers import close_http, free_port


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (xdist/remote.py)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On workers (``-n N --dist loadgroup``), the tests that share something
    costly run on one worker, one after the other:

    * the tests of a module with a module-scoped fixture (a browser, a
      fuzzed server, a cluster of the module's own): shared out, each worker
      would start its own, and a worker running another module's test in
      between would stop and start it again;
    * the tests against the session's Redis Cluster (`redis_cluster`), six
      redis-server processes that every worker would otherwise start.

    Each worker has its own session: its own Redis, ports and temp dirs.
    """
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d[-1].scope == "module" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        elif _on_the_session_cluster(item):
            item.add_marker(pytest.mark.xdist_group("redis-cluster"))


def _on_the_session_cluster(item: pytest.Item) -> bool:
    # directly, or by the "cluster" of REDIS_MODES (tests.helpers.redis_of);
    # a cluster test that starts its own (a benchmark's) runs anywhere
    if "redis_cluster" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "cluster" in callspec.params.values()


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
