"""Many centers on one deployment: what one center runs in this process.

A deployment serves any number of centers (workspaces). The default one is
the process's center file, started with the process as before; every other
center lives in the registry (``presence/store/centers.py``), written by
``PUT /api/v1/centers/{center}`` or ``presence center apply``. A process
starts a center's `Runtime` when a token of it first arrives, or when it
sees the center appear in the registry (`Watch`), and stops it when the
center is removed.

A center's runtime is everything the one center of a single-center process
had: its store (its keys' prefix), its hub (its sockets and its one event
channel), its dispatcher, and its background loops. Nothing is shared
between two centers but the Redis client, so a center's token, socket or
event can never reach another center's state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis

from presence.center import Center
from presence.config import Settings
from presence.context import Context, Workspaces
from presence.kpi.counters import Counters
from presence.kpi.live import LiveKpis
from presence.kpi.rollup import Rollup
from presence.router.dispatcher import Dispatcher, Sweeper
from presence.router.escalator import Escalator
from presence.schema import Invalid
from presence.services.centers import parse_document
from presence.services.webhooks import Deliverer
from presence.store import Store
from presence.store import cases as case_store
from presence.store import centers as registry
from presence.tasks import Periodic
from presence.ws import endpoints
from presence.ws.hub import Hub

log = logging.getLogger("presence.workspaces")


class Task(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    """One center in this process: its context, its hub, its loops."""

    ctx: Context
    hub: Hub
    # started in this order, stopped in the reverse one
    tasks: list[Task] = field(default_factory=list)
    revision: int = 0

    async def stop(self) -> None:
        for task in reversed(self.tasks):
            await task.stop()
        await self.hub.stop()


class Centers:
    """This process's runtimes, and how a new one starts (`Workspaces`'s starter)."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        secret: str,
        hubs: dict[str, Hub],
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.secret = secret
        # the app's `hubs` (``app.state.hubs``), which the websocket side reads
        self.hubs = hubs
        self.runtimes: dict[str, Runtime] = {}
        self.workspaces: Workspaces | None = None

    async def start_default(self, center: Center) -> Runtime:
        """The process's own center, from its file: written at every start
        (statuses, channels, rules; queues and agents seeded once), as a
        single-center deployment always did."""
        store = Store(self.redis, center.id)
        await store.sync_center(center)
        await case_store.sync_config(store, center)
        # listed with the others (GET /api/v1/centers); a file that did not
        # change since the last start keeps its revision
        await registry.put(self.redis, center.id, center.raw, only_if_changed=True)
        runtime = self._runtime(
            store,
            center,
            # written by sync_center above; read once, not on every snapshot
            statuses=await store.statuses(),
            channels=await store.channels(),
        )
        self.workspaces = Workspaces(runtime.ctx, self.start)
        self.workspaces.changed = self.changed
        await self._launch(runtime)
        return runtime

    async def start(self, center_id: str) -> Context | None:
        """A registered center, started in this process; None when there is
        no such center (or its document no longer validates here)."""
        rev = await registry.revision(self.redis, center_id)
        doc = await registry.document(self.redis, center_id)
        if doc is None:
            return None
        try:
            center = parse_document(center_id, doc)
        except Invalid as exc:
            log.error("center %s cannot start: %s %s", center_id, exc.field, exc.message)
            return None
        runtime = self._runtime(Store(self.redis, center_id), center)
        runtime.revision = rev
        await self._launch(runtime)
        log.info("center %s started", center_id)
        return runtime.ctx

    def _runtime(
        self,
        store: Store,
        center: Center,
        *,
        statuses: list[dict[str, Any]] | None = None,
        channels: list[dict[str, Any]] | None = None,
    ) -> Runtime:
        s = self.settings
        dispatcher = Dispatcher(store)
        hub = Hub(store, s)
        hub.wake = dispatcher.wake
        webhooks = Deliverer(store, center.webhooks, poll=min(0.2, s.sweep_interval * 2))
        ctx = Context(
            store=store,
            dispatcher=dispatcher,
            center=center,
            secret=self.secret,
            grace=s.grace_seconds,
            lease=s.lease_seconds,
            allowed_origins=s.allowed_origins,
            rate_per_second=s.rate_per_second,
            rate_burst=s.rate_burst,
            listening=hub.listening,
            webhooks=webhooks,
            statuses=statuses,
            channels=channels,
        )
        tasks: list[Task] = [
            dispatcher,
            Sweeper(store, dispatcher, interval=s.sweep_interval, grace=s.grace_seconds),
            # overflow/relaxation timer and outbound webhooks
            Escalator(store, dispatcher, interval=s.sweep_interval),
            webhooks,
            # KPIs: the live wallboard figures, the Prometheus counters, the roll-up
            LiveKpis(
                store,
                hub.push_supervisors,
                interval=s.kpi_interval,
                timezone=s.timezone,
                has_audience=lambda: bool(hub.supervisors),
            ),
            Counters(store, lambda: hub.connection_count),
            Rollup(store, retention_days=s.history_days, rollup_days=s.rollup_days, timezone=s.timezone),
        ]
        return Runtime(ctx, hub, tasks)

    async def _launch(self, runtime: Runtime) -> None:
        ctx = runtime.ctx
        center_id = ctx.center.id
        self.runtimes[center_id] = runtime
        self.hubs[center_id] = runtime.hub
        runtime.hub.start(lambda c: endpoints.resync(ctx, c))
        for task in runtime.tasks:
            task.start()
        ctx.dispatcher.wake(await ctx.store.queue_names())

    async def refresh(self, center_id: str) -> None:
        """Take a re-applied document into the running center (its model:
        intake, cases, webhooks; its state in Redis is already written)."""
        runtime = self.runtimes.get(center_id)
        if runtime is None or self.workspaces is None or runtime.ctx is self.workspaces.default:
            return
        runtime.revision = await registry.revision(self.redis, center_id)
        doc = await registry.document(self.redis, center_id)
        if doc is None:
            return
        try:
            center = parse_document(center_id, doc)
        except Invalid as exc:
            log.error("center %s not refreshed: %s %s", center_id, exc.field, exc.message)
            return
        runtime.ctx.center = center
        webhooks = runtime.ctx.webhooks
        if webhooks is not None and webhooks.hooks != center.webhooks:
            await webhooks.stop()
            fresh = Deliverer(webhooks.store, center.webhooks, poll=webhooks.poll)
            runtime.tasks[runtime.tasks.index(webhooks)] = fresh
            runtime.ctx.webhooks = fresh
            fresh.start()
        runtime.ctx.dispatcher.wake(await runtime.ctx.store.queue_names())

    async def changed(self, center_id: str) -> None:
        """This process applied or removed `center_id`: follow at once (other
        processes follow within a tick of their `Watch`)."""
        if not await registry.exists(self.redis, center_id):
            await self.stop_center(center_id)
        elif center_id in self.runtimes:
            await self.refresh(center_id)

    async def stop_center(self, center_id: str) -> None:
        """A removed center: its sockets here are closed, its loops stopped."""
        if self.workspaces is not None:
            self.workspaces.forget(center_id)
        runtime = self.runtimes.get(center_id)
        if runtime is None or (self.workspaces is not None and runtime.ctx is self.workspaces.default):
            return
        del self.runtimes[center_id]
        await runtime.hub.close_all()
        self.hubs.pop(center_id, None)
        await runtime.stop()
        log.info("center %s stopped", center_id)

    async def stop_all(self) -> None:
        for runtime in reversed(list(self.runtimes.values())):
            await runtime.stop()
        self.runtimes.clear()


class Watch(Periodic):
    """Follows the registry: starts the centers that appeared, refreshes
    those re-applied, stops those removed. One small read per tick, however
    many centers there are."""

    name = "centers-watch"
    tick_first = True

    def __init__(self, centers: Centers, *, interval: float = 1.0) -> None:
        super().__init__(interval)
        self.centers = centers

    async def tick(self) -> None:
        ws = self.centers.workspaces
        assert ws is not None
        revs = await registry.revisions(self.centers.redis)
        default = ws.default.center.id
        for cid, rev in revs.items():
            if cid == default:
                continue
            runtime = self.centers.runtimes.get(cid)
            if runtime is None:
                await ws.resolve(cid)
            elif runtime.revision < rev:
                await self.centers.refresh(cid)
        for cid in [c for c in self.centers.runtimes if c not in revs and c != default]:
            await self.centers.stop_center(cid)
