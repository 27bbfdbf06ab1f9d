"""How many replicas a change waits for: the count asked once per
`REPLICAS_TTL`, and told without a coroutine while it is trusted."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from presence.store import replication
from presence.store.replication import REPLICAS_TTL, Replication


class _Redis(Redis):
    """A standalone client whose INFO answers `slaves` replicas, counted."""

    def __init__(self, slaves: int) -> None:
        super().__init__()
        self.slaves = slaves
        self.asked = 0

    async def info(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        self.asked += 1
        return {"connected_slaves": self.slaves}


@pytest.mark.parametrize("slaves, wanted", [(0, 0), (2, 1)])
async def test_known_is_what_wanted_said_while_trusted(
    slaves: int, wanted: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(replication.time, "monotonic", lambda: now[0])
    redis = _Redis(slaves)
    rep = Replication(redis)
    assert rep.known("p:") is None  # never asked: the caller must ask
    assert await rep.wanted("p:") == wanted and redis.asked == 1
    now[0] += REPLICAS_TTL - 0.1
    assert rep.known("p:") == wanted and redis.asked == 1
    now[0] += 0.2
    assert rep.known("p:") is None  # stale: asked again by wanted
    assert await rep.wanted("p:") == wanted and redis.asked == 2


def test_a_fixed_count_is_known_at_once() -> None:
    assert Replication(_Redis(0), 2).known("p:") == 2
