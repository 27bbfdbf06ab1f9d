"""Fixtures for fuzzing: one real server per module (Hypothesis runs many
examples against it), on the session Redis, with its own center checked
against the invariants when the module is done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ServerProcess, write_center
from tests.integration.conftest import check_center


@pytest.fixture(scope="module")
def fuzz_server(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    path, cid = write_center(tmp / "center.toml")
    # a generous rate budget: the fuzzer is fast on purpose; a long
    # heartbeat: a module-scoped socket waits idle while the other
    # endpoint's examples run (over 60 s on a busy box), and the server
    # closed it as silent (1000) before its teardown checked it was open
    server = ServerProcess(
        redis_server,
        path,
        env={
            "PRESENCE_RATE_PER_SECOND": "100000",
            "PRESENCE_RATE_BURST": "100000",
            "PRESENCE_HEARTBEAT_TIMEOUT": "3600",
        },
        log_dir=tmp,
    ).start()
    try:
        yield server
    finally:
        server.stop()
        logs = server.logs()
        breaches = check_center(redis_server, cid)
        assert not breaches, f"invariant breaches in center {cid}: {breaches}"
        assert "Traceback" not in logs, logs[-4000:]
