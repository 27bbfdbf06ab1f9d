"""`Context`: what every request and every socket of this process carries.

The app builds one at start-up (``presence/app.py``) and keeps it as
``app.state.ctx``; the HTTP routes (``presence/http/``) and the websocket
endpoints (``presence/ws/``) read it. It sits below both transports, so
neither imports the other to reach it. What only one transport owns stays
there: the hub and its sockets are the websocket side's (``app.state.hub``);
the HTTP side sees only whether its listener is subscribed (`listening`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from presence.center import Center
from presence.router.dispatcher import Dispatcher
from presence.services.webhooks import Deliverer
from presence.store import Store

# Sockets that register and read their snapshot at once; the rest wait
# their turn. In a reconnect storm (1,000 agents at once) every start took
# a Redis connection: the pool grew by hundreds of new connections on a
# saturated event loop, their 2 s connect timeouts fired and the pool's
# 5 s wait ran out, and a third of the agents got 1013 instead of a
# snapshot. Queued here, they are all served, a few dozen at a time.
STARTS_AT_ONCE = 32


@dataclass
class Context:
    """What an endpoint needs, assembled once by the app."""

    store: Store
    dispatcher: Dispatcher
    center: Center
    secret: str
    grace: float
    lease: float
    allowed_origins: tuple[str, ...]
    rate_per_second: float
    rate_burst: int
    # set while this process's pub/sub listener is subscribed (the hub's;
    # readyz answers 503 until then)
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    webhooks: Deliverer | None = None
    # admission of socket starts (STARTS_AT_ONCE); made on the app's loop
    starts: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(STARTS_AT_ONCE))
    # The center's statuses and channels, as `Store.statuses()`/`channels()`
    # read them once after `Store.sync_center` (app.py): they change only
    # when a process starts with a new center file, so no snapshot reads
    # them again. None: read from Redis on each snapshot.
    statuses: list[dict[str, Any]] | None = None
    channels: list[dict[str, Any]] | None = None

    async def catalog(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The statuses and channels every snapshot carries."""
        statuses = self.statuses if self.statuses is not None else await self.store.statuses()
        channels = self.channels if self.channels is not None else await self.store.channels()
        return statuses, channels
