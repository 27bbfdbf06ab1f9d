"""`Context`: what every request and every socket of this process carries.

There is one per center this process serves (a deployment serves many
centers, each a workspace of its own): the app builds the default center's
at start-up (``presence/app.py``) and `Workspaces` holds them all as
``app.state.centers``. The HTTP routes (``presence/http/``) and the
websocket endpoints (``presence/ws/``) act on the context of their token's
center, and on no other. It sits below both transports, so
neither imports the other to reach it. What only one transport owns stays
there: the hub and its sockets are the websocket side's (``app.state.hub``);
the HTTP side sees only whether its listener is subscribed (`listening`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from presence.center import Center
from presence.router.dispatcher import Dispatcher
from presence.services import cases
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
    # the customers' links name the center (every center but the default
    # one, whose links stay as they were: ``presence.auth.sign_link``)
    named_links: bool = False

    def center_info(self) -> dict[str, str]:
        """The center's id and name, as the snapshots carry them (the pages show the name)."""
        return {"id": self.center.id, "name": self.center.name}

    def status_path(self, wid: str) -> str:
        """The customer's signed link to the status page of case `wid`."""
        return cases.status_path(self.secret, self.store.keys.center, wid, named=self.named_links)

    def survey_path(self, wid: str, ended_ms: int) -> str:
        """The signed survey link of case `wid`, completed at `ended_ms` ("" when the center has none)."""
        center, days = self.store.keys.center, self.center.cases.survey_days
        return cases.survey_path(self.secret, center, wid, ended_ms, days, named=self.named_links)

    async def catalog(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The statuses and channels every snapshot carries."""
        statuses = self.statuses if self.statuses is not None else await self.store.statuses()
        channels = self.channels if self.channels is not None else await self.store.channels()
        return statuses, channels


# Builds the context of a center this process has not served yet, or None
# when the deployment has no such center (``presence/workspaces.py``).
Starter = Callable[[str], Awaitable["Context | None"]]


async def _nothing(center: str) -> None:
    return None


class Workspaces:
    """The centers this process serves, by id: the context a token resolves to.

    The default center (the process's center file) is always there. Any
    other center is started the first time a token of it arrives (or when
    the process sees it appear in the registry): `starter` reads its
    document from Redis and builds its context, or says it does not exist.
    Concurrent first requests for one center share one start.
    """

    def __init__(self, default: Context, starter: Starter) -> None:
        self.default = default
        self.by_id: dict[str, Context] = {default.center.id: default}
        self._starter = starter
        # called once this process has applied or removed a center (the API)
        self.changed: Callable[[str], Awaitable[None]] = _nothing
        self._starting: dict[str, asyncio.Future[Context | None]] = {}

    def get(self, center: str | None) -> Context | None:
        """The context of a center this process already serves (None: the default)."""
        return self.default if center is None else self.by_id.get(center)

    async def resolve(self, center: str | None) -> Context | None:
        """The context of `center` (None: the default), started if needed;
        None when the deployment has no such center."""
        ctx = self.get(center)
        if ctx is not None or center is None:
            return ctx
        pending = self._starting.get(center)
        if pending is None:
            pending = asyncio.ensure_future(self._start(center))
            self._starting[center] = pending
        # shielded: one caller's cancellation (a client hanging up) must not
        # abandon a start others wait for
        return await asyncio.shield(pending)

    async def _start(self, center: str) -> Context | None:
        try:
            ctx = await self._starter(center)
            if ctx is not None:
                self.by_id[center] = ctx
            return ctx
        finally:
            self._starting.pop(center, None)

    def forget(self, center: str) -> Context | None:
        """Stop serving `center` here (removed); never the default."""
        if center == self.default.center.id:
            return None
        return self.by_id.pop(center, None)
