"""A closed socket's server side is freed when it closes, not by the
collector's rare full passes.

A server's collector runs its full pass seldom (app.GC_THRESHOLDS, and a
full pass waits for a quarter more long-lived objects): anything of a
closed socket left in a reference cycle (its wire, scope, buffers and
transport) waits for one. In the soak, ~30 reconnections a minute grew the
server's RSS ~0.6 MB a minute that way (docs/RELIABILITY.md, "conn16").
The server runs in this process (in_process), so its objects can be
counted here, with the collector off.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from presence.ws.wire import Wire
from tests.harness import ServerProcess, agent, supervisor

pytestmark = [pytest.mark.timeout(60), pytest.mark.in_process]


def _wires() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, Wire))


async def test_closed_sockets_wires_are_freed_without_the_collector(server: ServerProcess) -> None:
    warm = await agent(server, "alice")
    await warm.close()
    await asyncio.sleep(0.3)
    gc.collect()
    gc.disable()
    try:
        before = _wires()
        for i in range(20):
            c = await (agent(server, "alice") if i % 2 else supervisor(server))
            await c.close()
        await asyncio.sleep(0.5)
        left = _wires() - before
    finally:
        gc.enable()
    # 20 sockets opened and closed: each one's wire freed as it closed
    # (before the fix, all 20 waited for a full collection)
    assert left <= 1, left
