"""Fixtures for integration tests: real server processes on free ports.

Every center a test creates is checked against the routing invariants when
the test ends (``check.lua``), so any test that drives work through the
router also proves nothing was doubled or lost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from presence.store.keys import Keys
from presence.store.scripts import script_source
from tests.harness import DEFAULT_CENTER, DrivenClock, InProcessServer, ServerProcess, WsClient, write_center
from tests.helpers import redis_sync

ServerFactory = Callable[..., ServerProcess]


def check_center(redis_url: str, center_id: str) -> list[str]:
    client = redis_sync(redis_url)
    try:
        script = client.register_script(script_source("check"))
        reply = script(keys=[Keys(center_id).prefix], args=[int(time.time() * 1000)])
        return [b.decode() if isinstance(b, bytes) else str(b) for b in reply]
    finally:
        client.close()


@pytest.fixture
def server_factory(
    redis_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ServerFactory]:
    """Start servers: factory(center=TOML body, env={...}, config=path, workers=1, clock=None, process=False).

    Servers given the same `config` path share one center (several processes,
    one Redis). With a `clock` (a `DrivenClock`), the server runs in this
    process on that clock (`InProcessServer`): the test advances it past a
    deadline instead of sleeping. In a module marked
    ``pytest.mark.in_process`` every one-worker server does (on a clock left
    alone), which starts in a fraction of a process's time; `kill`, `pause`
    and a second worker need a process (``process=True`` asks for one;
    several workers get one). All are stopped at the
    end, then every center is checked.
    """
    in_process = request.node.get_closest_marker("in_process") is not None
    started: list[ServerProcess] = []
    centers: set[str] = set()

    def factory(
        center: str = DEFAULT_CENTER,
        *,
        env: dict[str, str] | None = None,
        config: Path | None = None,
        workers: int = 1,
        clock: DrivenClock | None = None,
        process: bool = False,
    ) -> ServerProcess:
        if config is None:
            path, cid = write_center(tmp_path / f"center-{len(started)}.toml", center)
        else:
            path = config
            cid = path.read_text("utf-8").split('"')[1]
        centers.add(cid)
        server: ServerProcess
        if clock is None and in_process and workers == 1 and not process:
            clock = DrivenClock()
        if clock is not None:
            assert workers == 1, "an in-process server is one worker"
            server = InProcessServer(redis_server, path, clock, env=env, log_dir=tmp_path)
        else:
            server = ServerProcess(redis_server, path, env=env, workers=workers, log_dir=tmp_path)
        started.append(server)
        return server.start()

    yield factory
    for s in started:
        s.stop()
    for cid in centers:
        breaches = check_center(redis_server, cid)
        assert not breaches, f"invariant breaches in center {cid}: {breaches}"


@pytest.fixture(autouse=True)
async def _close_clients(server_factory: ServerFactory) -> AsyncIterator[None]:
    """Close every websocket client a test opened, even when it failed.

    It asks for `server_factory` so that it is torn down first: clients close
    before their servers get SIGTERM, and shutdown never waits on a socket
    whose client is not running.
    """
    yield
    while WsClient.opened:
        client = WsClient.opened.pop()
        with contextlib.suppress(Exception):
            await client.close()


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    """One server with the default test center (queues support, billing; agents alice, bob)."""
    return server_factory()
