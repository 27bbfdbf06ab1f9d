"""Two centers on different shards of one cluster route at the same time,
each with its own agents (the same agent id in both is two agents), and
neither sees the other's events: each center's channel lives in its own
slot, on its own primary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from presence.store.keys import Keys
from tests.cluster import LocalCluster
from tests.harness import agent, available, post_work, supervisor, unique_center, write_center
from tests.integration.conftest import ServerFactory

pytestmark = [pytest.mark.timeout(90), pytest.mark.cluster]


@pytest.fixture
def redis_server(redis_cluster: LocalCluster) -> str:
    redis_cluster.wait_ok()
    return redis_cluster.url


def two_centers_on_two_shards(cluster: LocalCluster) -> tuple[str, str]:
    first = unique_center()
    while True:
        second = unique_center()
        if cluster.owner(Keys(second).prefix) is not cluster.owner(Keys(first).prefix):
            return first, second


async def test_two_centers_on_two_shards_route_apart(
    redis_cluster: LocalCluster, server_factory: ServerFactory, tmp_path: Path
) -> None:
    ids = two_centers_on_two_shards(redis_cluster)
    servers = []
    for cid in ids:
        path, _ = write_center(tmp_path / f"{cid}.toml", center_id=cid)
        servers.append(server_factory(config=path))
    alices = [await agent(s, "alice") for s in servers]
    boards = [await supervisor(s) for s in servers]
    for a in alices:
        await available(a)
    for board in boards:
        await board.quiet(0.3)

    async def post_and_take(i: int, n: int) -> list[str]:
        got = []
        for k in range(n):
            r = await asyncio.to_thread(post_work, servers[i], subject=f"{ids[i]} item {k}")
            assert r.status_code == 201, r.text
            offer = await alices[i].expect("offer")
            got.append(offer["subject"])
            reply = await alices[i].request({"type": "offer.accept", "work_id": offer["work_id"]})
            assert reply["type"] == "ok", reply
            await alices[i].request({"type": "work.complete", "work_id": offer["work_id"]})
        return got

    # both centers route at the same time
    first, second = await asyncio.gather(post_and_take(0, 5), post_and_take(1, 5))
    assert all(s.startswith(ids[0]) for s in first) and len(first) == 5
    assert all(s.startswith(ids[1]) for s in second) and len(second) == 5
    # nothing of one center reached the other's agent or wallboard
    for i, (a, board) in enumerate(zip(alices, boards, strict=True)):
        other = ids[1 - i]
        await a.quiet(0.5)
        await board.quiet(0.5)
        for msg in [*a.inbox, *board.inbox]:  # everything either got and no test consumed
            assert other not in str(msg), msg
        # the wallboard saw its own center's work
        assert any(ids[i] in str(m) for m in board.inbox) or any(m["type"] == "agents" for m in board.inbox)
