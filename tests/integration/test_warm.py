"""`warm` at start-up: an optimisation that must not abort a start on a slow host."""

from __future__ import annotations

from presence.store.client import open_redis, warm


async def test_warm_opens_the_connections_asked_for(redis_server: str) -> None:
    client = await open_redis(redis_server)
    try:
        assert await warm(client, 8) == 8
    finally:
        await client.aclose()
