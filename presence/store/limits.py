"""Rate limits counted in Redis, so every process of a center shares one count.

A bucket is a fixed window (``store/lua/rate_hit.lua``): the first hit
starts it, each hit counts one, and past the limit a hit is refused until
the window ends. The web form's per-address limit uses it; a socket's
message rate is limited in process (``presence/ws/session.py``), since a
socket lives on one process.
"""

from __future__ import annotations

from presence.store import Store


async def rate_hit(store: Store, bucket: str, window: int, limit: int) -> tuple[bool, int]:
    """Count one hit; (allowed, seconds until the window resets)."""
    reply = await store.scripts.raw("rate_hit", store.keys.prefix, store.now_ms(), bucket, window, limit)
    allowed = reply[0] in (b"ok", "ok")
    return allowed, max(1, int(reply[2]))
