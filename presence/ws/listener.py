"""One pub/sub connection for the event channels of many centers.

The default center's hub keeps its own listener (``hub.py``). Every other
center this process serves has a hub too, but a connection per center would
not scale: a process serving hundreds of centers would hold hundreds of
idle connections out of one client's pool. The `Listener` subscribes one
connection to every such center's channel, adding and dropping channels as
centers start and stop, and hands each message to its center's hub, which
fans it out exactly as its own listener would. Like the hub's listener, it
may have missed events after losing the connection, so every socket of
every hub it serves gets a fresh snapshot once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from presence.tasks import stop_task
from presence.ws.hub import Hub

log = logging.getLogger("presence.hub")


class Listener:
    """This process's one pub/sub listener for the hubs added to it."""

    def __init__(self, pubsub: Callable[[], PubSub]) -> None:
        self._pubsub = pubsub
        self.hubs: dict[bytes, Hub] = {}
        self._current: PubSub | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="centers-listen")

    async def stop(self) -> None:
        await stop_task(self._task)

    async def add(self, hub: Hub) -> None:
        channel = hub.store.keys.events_channel.encode()
        self.hubs[channel] = hub
        ps = self._current
        if ps is not None and ps.subscribed:
            await ps.subscribe(channel)
            hub.listening.set()
        else:
            self._changed.set()

    async def remove(self, hub: Hub) -> None:
        channel = hub.store.keys.events_channel.encode()
        if self.hubs.pop(channel, None) is None:
            return
        hub.listening.clear()
        ps = self._current
        if ps is not None and ps.subscribed:
            with contextlib.suppress(RedisError, OSError):
                await ps.unsubscribe(channel)

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            while not self.hubs:
                self._changed.clear()
                await self._changed.wait()
            ps = self._pubsub()
            try:
                await ps.subscribe(*self.hubs)
                assert ps.connection is not None
                ps.connection.register_connect_callback(self._reconnected)
                self._current = ps
                # hubs added while the first subscribe was on its way
                missing = [c for c in self.hubs if c not in ps.channels]
                if missing:
                    await ps.subscribe(*missing)
                for hub in self.hubs.values():
                    hub.listening.set()
                if not first:
                    await self._resync()
                first = False
                backoff = 0.1
                async for message in ps.listen():
                    if message.get("type") == "message":
                        hub = self.hubs.get(message["channel"])
                        if hub is not None:
                            hub.deliver(message["data"])
                # every channel dropped: wait for the next hub
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                for hub in self.hubs.values():
                    hub.listening.clear()
                log.warning("centers' pub/sub listener lost Redis (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._current = None
                if ps.connection is not None:
                    ps.connection.deregister_connect_callback(self._reconnected)
                with contextlib.suppress(Exception):
                    await ps.aclose()  # type: ignore[no-untyped-call]

    async def _reconnected(self, _connection: object) -> None:
        await self._resync()

    async def _resync(self) -> None:
        n = sum(len(h.all_conns()) for h in self.hubs.values())
        log.warning("centers' pub/sub listener reconnected; resynchronising %d sockets", n)
        for hub in list(self.hubs.values()):
            await hub.resync_all()
