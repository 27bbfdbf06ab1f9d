"""Fixtures for the fault tests: the integration fixtures, plus a private
Redis per test (on a port of its own, so a test may stop, pause or restart
it) and servers bound to it, whose centers are checked at teardown."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from presence.embedded import EmbeddedRedis
from tests.harness import DEFAULT_CENTER, ServerProcess, write_center
from tests.helpers import free_port
from tests.integration.conftest import (  # noqa: F401  (fixtures re-exported)
    _close_clients,
    check_center,
    server,
    server_factory,
)


def raise_nofile(want: int = 8192) -> None:
    """Raise RLIMIT_NOFILE; servers started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


raise_nofile()


class PrivateRedis:
    """An embedded Redis with its AOF in a tmp dir, on a fixed port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.server: EmbeddedRedis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.server is not None and self.server.pid is not None
        return self.server.pid

    def start(self) -> None:
        self.server = EmbeddedRedis(self.data_dir, port=self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    r = PrivateRedis(tmp_path / "private")
    # the port can be taken between free_port() and the server's bind (as in
    # tests/conftest.py); once started, a test restarts it on the same port
    for attempt in range(3):
        try:
            r.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
            r.port = free_port()
    try:
        yield r
    finally:
        if r.server is not None and r.server.pid is not None:
            # never leave it paused: SHUTDOWN would wait forever
            with contextlib.suppress(ProcessLookupError):
                r.resume()
        r.stop()


# one agent on one queue, the smallest center a fault test assigns in; an
# offer stays pending 30 s, longer than the faults these tests cause
ONE_AGENT_CENTER = """
[[queues]]
name = "support"
push_timeout = 30

[[agents]]
id = "alice"
queues = ["support"]
"""

PrivateFactory = Callable[..., ServerProcess]


@pytest.fixture
def private_server_factory(private_redis: PrivateRedis, tmp_path: Path) -> Iterator[PrivateFactory]:
    """Servers on the private Redis; stopped, then checked, at teardown."""
    started: list[ServerProcess] = []
    centers: set[str] = set()

    def factory(center: str = DEFAULT_CENTER, *, env: dict[str, str] | None = None) -> ServerProcess:
        path, cid = write_center(tmp_path / f"private-center-{len(started)}.toml", center)
        centers.add(cid)
        srv = ServerProcess(private_redis.url, path, env=env, log_dir=tmp_path)
        started.append(srv)
        return srv.start()

    yield factory
    for s in started:
        s.stop()
    if private_redis.server is not None:
        for cid in centers:
            breaches = check_center(private_redis.url, cid)
            assert not breaches, f"invariant breaches in center {cid}: {breaches}"
