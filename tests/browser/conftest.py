"""Fixtures for browser tests: Debian's Chromium driven by Playwright (sync API).

The tests are plain ``def`` functions: Playwright's sync API must not run
inside pytest-asyncio's event loop. Each test gets its own server process and
center (checked against the routing invariants at teardown, like the
integration tests). Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from presence.store.keys import Keys
from presence.store.scripts import script_source
from tests.browser.support import CENTER
from tests.harness import DrivenClock, InProcessServer, ServerProcess, write_center

CHROMIUM = "/usr/bin/chromium"


pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # In CI the test command installs Chromium; a missing one there is a
    # failure to see, not a skip to overlook.
    if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
        skip = pytest.mark.skip(
            reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        )
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(skip)


# Module scope, not session: Playwright's sync API keeps an event loop
# running in this thread while it is open, and pytest-asyncio cannot run the
# async tests of other modules until it is closed again.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        try:
            yield b
        finally:
            b.close()


def _check_center(redis_url: str, center_id: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        script = client.register_script(script_source("check"))
        reply = script(keys=[Keys(center_id).prefix], args=[int(time.time() * 1000)])
        return [b.decode() if isinstance(b, bytes) else str(b) for b in reply]
    finally:
        client.close()


class Servers:
    """Servers of one test; `restart()` kills one and starts another on the same port and center."""

    def __init__(self, redis_url: str, tmp: Path) -> None:
        self.redis_url = redis_url
        self.tmp = tmp
        self.config, self.center_id = write_center(tmp / "center.toml", CENTER)
        self.started: list[ServerProcess] = []

    def use_center(self, body: str) -> None:
        """Another center file for the servers started after this (same center id)."""
        write_center(self.config, body, self.center_id)

    def start(
        self, port: int | None = None, env: dict[str, str] | None = None, *, in_process: bool = False
    ) -> ServerProcess:
        """A server process; `in_process`: served from this process instead (no kill, no pause)."""
        s: ServerProcess
        if in_process:
            assert port is None, "an in-process server listens on a port of its own choosing"
            s = InProcessServer(self.redis_url, self.config, DrivenClock(), env=env, log_dir=self.tmp)
        else:
            s = ServerProcess(self.redis_url, self.config, env=env, log_dir=self.tmp, port=port)
        self.started.append(s)
        return s.start()

    def stop_all(self) -> None:
        for s in self.started:
            s.stop()


@pytest.fixture
def servers(redis_server: str, tmp_path: Path) -> Iterator[Servers]:
    group = Servers(redis_server, tmp_path)
    yield group
    group.stop_all()
    breaches = _check_center(redis_server, group.center_id)
    assert not breaches, f"invariant breaches in center {group.center_id}: {breaches}"


@pytest.fixture
def server(servers: Servers, request: pytest.FixtureRequest) -> ServerProcess:
    """One server; in a module marked ``pytest.mark.in_process``, served from this process."""
    return servers.start(in_process=request.node.get_closest_marker("in_process") is not None)


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    try:
        yield ctx
    finally:
        ctx.close()
