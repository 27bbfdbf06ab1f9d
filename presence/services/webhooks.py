"""Outbound webhooks: signed HTTP POSTs of routing and case events.

The Lua script that makes a change also appends its event to the stream of
every webhook subscribed to that event type (``hook`` in
``store/lua/_lib_webhook.lua``), in the same atomic call; the stream
``webhook:<name>`` keeps it until the receiver answers 2xx. So a receiver
that is down loses nothing: its events wait in Redis, across restarts of
every presence process.

Each process runs one delivery task (`Deliverer`). Deliveries are claimed
through one Redis consumer group per stream (``presence/store/webhooks.py``),
so with several processes each event goes to one of them; a failed entry
is retried by the process that holds it, with exponential backoff (per
webhook, up to ``max_backoff``); entries pending on a consumer that has
been silent for ``claim_after`` seconds (its process died) are taken over.
Delivery is at least once: a receiver de-duplicates by the
``X-Presence-Delivery`` id.

The body is JSON: ``{"id", "webhook", "center", "type", "ts", "data", "item"?}``
and ``X-Presence-Signature: sha256=<hex HMAC-SHA256 of the raw body with the
webhook's secret>`` signs it (see docs/channels.md to verify it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgpack
import orjson
from redis.exceptions import RedisError

from presence.center import Webhook
from presence.store import Store
from presence.store import webhooks as streams
from presence.tasks import Pace, pace_sleep, stop_task

log = logging.getLogger("presence.webhooks")

SIGNATURE_HEADER = "X-Presence-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: constant-time compare of the signature header."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def _s(v: Any) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


Links = Callable[[str, dict[str, Any]], dict[str, str]]


def body_of(
    entry_id: str, webhook: str, center: str, fields: dict[Any, Any], links: Links | None = None
) -> tuple[str, bytes]:
    """The (event type, JSON body) of one stream entry; `links` adds the
    customer's signed links to the events that carry them."""
    head: dict[str, Any] = msgpack.unpackb(fields[b"h"], raw=False)
    kind = str(head.pop("type", "event"))
    ts = head.pop("ts", None)
    if links is not None:
        head.update(links(kind, {**head, "ts": ts}))
    out: dict[str, Any] = {"id": entry_id, "webhook": webhook, "center": center, "type": kind, "ts": ts}
    raw_item = fields.get(b"i")
    item = msgpack.unpackb(raw_item, raw=False) if raw_item else None
    # notes and messages travel wrapped ({"note": ...}); they belong in data
    if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in ("note", "message"):
        head.update(item)
        item = None
    out["data"] = head
    if item is not None:
        out["item"] = item
    return kind, orjson.dumps(out)


@dataclass
class _State:
    backoff: float = 0.0
    next_try: float = 0.0
    delivered: int = 0
    failed: int = 0
    last_error: str = ""
    group_ready: bool = False


# seconds between polls while the center is quiet (any event wakes it)
IDLE_POLL = 2.0


class Deliverer:
    """This process's one delivery task for every configured webhook."""

    def __init__(
        self,
        store: Store,
        hooks: tuple[Webhook, ...],
        *,
        poll: float = 0.2,
        batch: int = 50,
        stale_after: float | None = None,
        links: Links | None = None,
    ) -> None:
        self.store = store
        self.links = links
        self.hooks = hooks
        self.poll = poll
        self.batch = batch
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        # longer than any attempt can take, so a live consumer's entry is never taken over
        self.stale_after = stale_after
        self.state = {h.name: _State() for h in hooks}
        # slower polls while the center is idle (a new event wakes it)
        self.pace: Pace | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def _stale(self, hook: Webhook) -> float:
        return self.stale_after or hook.claim_after or max(30.0, 3 * hook.timeout)

    def start(self) -> None:
        if self.hooks:
            self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        await stop_task(self._task)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        self._client = httpx.AsyncClient(headers={"User-Agent": "presence-webhooks/1"})
        while True:
            try:
                await asyncio.gather(*(self._pump(h) for h in self.hooks))
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("webhook delivery paused, Redis unavailable: %s", exc)
            except Exception:
                log.exception("webhook delivery round failed")
            # a retry due while the center is quiet still goes out
            await pace_sleep(self.pace, self.poll, idle=IDLE_POLL)

    async def _group(self, stream: str, st: _State) -> None:
        if not st.group_ready:
            await streams.ensure_group(self.store, stream)
            st.group_ready = True

    async def _pump(self, hook: Webhook) -> None:
        st = self.state[hook.name]
        if time.monotonic() < st.next_try:
            return
        stream = self.store.keys.webhook_stream(hook.name)
        await self._group(stream, st)
        stale_ms = int(self._stale(hook) * 1000)
        for eid, fields in await streams.claim(
            self.store, stream, self.consumer, stale_ms=stale_ms, count=self.batch
        ):
            if not fields or b"h" not in fields:
                # deleted under us (delivered by another process): just settle it
                await streams.settle(self.store, stream, eid)
                continue
            ok = await self._deliver(hook, _s(eid), fields, st)
            if not ok:
                st.backoff = min(hook.max_backoff, max(0.2, st.backoff * 2))
                st.next_try = time.monotonic() + st.backoff
                # keep order: the rest waits for this one
                return
            st.backoff = 0.0
            await streams.settle(self.store, stream, eid)

    async def _deliver(self, hook: Webhook, eid: str, fields: dict[Any, Any], st: _State) -> bool:
        assert self._client is not None
        kind, body = body_of(eid, hook.name, self.store.keys.center, fields, self.links)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(hook.secret, body),
            "X-Presence-Event": kind,
            "X-Presence-Delivery": eid,
        }
        try:
            resp = await self._client.post(hook.url, content=body, headers=headers, timeout=hook.timeout)
        except httpx.HTTPError as exc:
            st.failed += 1
            st.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.info("webhook %s: %s not delivered (%s); retrying", hook.name, eid, st.last_error)
            return False
        if 200 <= resp.status_code < 300:
            st.delivered += 1
            return True
        st.failed += 1
        st.last_error = f"HTTP {resp.status_code}"
        log.info("webhook %s: %s refused with %s; retrying", hook.name, eid, resp.status_code)
        return False

    async def status(self) -> list[dict[str, Any]]:
        """Each webhook's backlog (events not yet acknowledged) and this process's counts."""
        lens = await streams.backlog(self.store, [h.name for h in self.hooks])
        return [
            {
                "name": h.name,
                "url": h.url,
                "events": list(h.events),
                "pending": n,
                "delivered": self.state[h.name].delivered,
                "failed": self.state[h.name].failed,
                "last_error": self.state[h.name].last_error or None,
            }
            for h, n in zip(self.hooks, lens, strict=True)
        ]
