"""Reply templates in Redis: one hash, ``templates`` (id -> msgpack).

A template is written whole by one HSET (atomic on its own: no other key
changes with it), so it needs no script. Its shape and the placeholder
check are ``presence/schema/templates.py``.
"""

from __future__ import annotations

from typing import Any

import msgpack

from presence.store import Store


def _s(v: Any) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


async def put(store: Store, template_id: str, template: dict[str, Any]) -> bool:
    """Store a template; True when it is new."""
    raw = msgpack.packb({**template, "updated": store.now_ms()}, use_bin_type=True)
    return bool(await store.redis.hset(store.keys.templates, template_id, raw))


async def get(store: Store, template_id: str) -> dict[str, Any] | None:
    raw = await store.redis.hget(store.keys.templates, template_id)
    return {"id": template_id, **msgpack.unpackb(raw, raw=False)} if raw is not None else None


async def all_of(store: Store) -> list[dict[str, Any]]:
    h = await store.redis.hgetall(store.keys.templates)
    out = [{"id": _s(k), **msgpack.unpackb(v, raw=False)} for k, v in h.items()]
    return sorted(out, key=lambda t: (str(t.get("name", "")).casefold(), t["id"]))


async def delete(store: Store, template_id: str) -> bool:
    return bool(await store.redis.hdel(store.keys.templates, template_id))
