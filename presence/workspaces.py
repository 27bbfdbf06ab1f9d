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

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterable
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
from presence.store.lock import holder_id
from presence.tasks import Pace, Periodic
from presence.ws import endpoints
from presence.ws.hub import Hub
from presence.ws.listener import Listener

log = logging.getLogger("presence.workspaces")

# a process not heard from for this long (seconds) owns nothing any more
PROCESS_STALE = 5.0


class Task(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    """One center in this process: its context, its hub, its loops.

    `local` loops run wherever the center is served (its sockets' dispatcher,
    their connection counts, live KPIs for its wallboards here); `owned`
    loops (timers, escalation, webhook delivery, the roll-up) run only in
    the center's owner process (`owns`), so N processes and M centers run
    them M times, not M × N. The default center's run in every process, as
    a single-center deployment always did.
    """

    ctx: Context
    hub: Hub
    live: LiveKpis
    counters: Counters
    # started in this order, stopped in the reverse one
    local: list[Task] = field(default_factory=list)
    owned: list[Task] = field(default_factory=list)
    pace: Pace | None = None
    revision: int = 0
    owner: bool = False

    async def set_owner(self, owner: bool) -> None:
        if owner == self.owner:
            return
        self.owner = owner
        self.ctx.dispatcher.safety = owner
        self.live.owner = owner
        if owner:
            for task in self.owned:
                task.start()
            # the safety pass of the new owner: what waits is routed now
            self.ctx.dispatcher.wake(await self.ctx.store.queue_names())
        else:
            for task in reversed(self.owned):
                await task.stop()

    async def stop(self) -> None:
        if self.owner:
            for task in reversed(self.owned):
                await task.stop()
        for task in reversed(self.local):
            await task.stop()
        await self.hub.stop()


def owner_of(center: str, processes: Iterable[str]) -> str | None:
    """The process that owns `center`'s shared loops: rendezvous hashing, so
    a process joining or leaving moves only the centers it wins or held."""
    best: tuple[bytes, str] | None = None
    for proc in processes:
        score = hashlib.blake2b(f"{center}|{proc}".encode(), digest_size=8).digest()
        if best is None or score > best[0]:
            best = (score, proc)
    return None if best is None else best[1]


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
        # one pub/sub connection for every center but the default one
        self.listener = Listener(lambda: redis.pubsub(ignore_subscribe_messages=True))
        self.runtimes: dict[str, Runtime] = {}
        self.workspaces: Workspaces | None = None
        # this process in the registry of live processes, and who else is
        # there (kept by `Watch`; empty until its first tick: own everything)
        self.process = holder_id()
        self.processes: list[str] = []

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
            paced=False,
        )
        self.workspaces = Workspaces(runtime.ctx, self.start)
        self.workspaces.changed = self.changed
        self.listener.start()
        await self._launch(runtime, owner=True)
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
        await self._launch(runtime, owner=self.owns(center_id))
        log.info("center %s started", center_id)
        return runtime.ctx

    def _runtime(
        self,
        store: Store,
        center: Center,
        *,
        statuses: list[dict[str, Any]] | None = None,
        channels: list[dict[str, Any]] | None = None,
        paced: bool = True,
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
        live = LiveKpis(
            store,
            hub.push_supervisors,
            interval=s.kpi_interval,
            timezone=s.timezone,
            has_audience=lambda: bool(hub.supervisors),
        )
        counters = Counters(store, lambda: hub.connection_count)
        sweeper = Sweeper(store, dispatcher, interval=s.sweep_interval, grace=s.grace_seconds)
        # overflow/relaxation timer
        escalator = Escalator(store, dispatcher, interval=s.sweep_interval)
        rollup = Rollup(store, retention_days=s.history_days, rollup_days=s.rollup_days, timezone=s.timezone)
        # quiet: its loops sleep, and `Quiet` does their work with the others'
        pace = Pace(idle=None, quiet_after=s.quiet_after) if paced else None
        if pace is not None:
            # every event of the center wakes its loops
            hub.on_event.append(lambda _msg: pace.touch())
            for paced_task in (dispatcher, live, webhooks, counters, sweeper, escalator):
                paced_task.pace = pace
        # KPIs: the live wallboard figures, the Prometheus counters, the roll-up
        return Runtime(
            ctx,
            hub,
            live,
            counters,
            local=[dispatcher, live, counters],
            owned=[sweeper, escalator, webhooks, rollup],
            pace=pace,
        )

    async def _launch(self, runtime: Runtime, *, owner: bool) -> None:
        ctx = runtime.ctx
        center_id = ctx.center.id
        self.runtimes[center_id] = runtime
        self.hubs[center_id] = runtime.hub
        shared = runtime.pace is not None
        runtime.hub.start(lambda c: endpoints.resync(ctx, c), listen=not shared)
        if shared:
            await self.listener.add(runtime.hub)
        ctx.dispatcher.safety = runtime.live.owner = False
        for task in runtime.local:
            task.start()
        await runtime.set_owner(owner)
        if not owner:
            ctx.dispatcher.wake(await ctx.store.queue_names())

    def owns(self, center_id: str) -> bool:
        """Whether this process runs `center_id`'s shared loops."""
        if not self.processes:
            return True
        return owner_of(center_id, self.processes) == self.process

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
            if runtime.owner:
                await webhooks.stop()
            fresh = Deliverer(webhooks.store, center.webhooks, poll=webhooks.poll)
            fresh.pace = webhooks.pace
            runtime.owned[runtime.owned.index(webhooks)] = fresh
            runtime.ctx.webhooks = fresh
            if runtime.owner:
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
        await self.listener.remove(runtime.hub)
        self.hubs.pop(center_id, None)
        await runtime.stop()
        log.info("center %s stopped", center_id)

    async def stop_all(self) -> None:
        await self.listener.stop()
        for runtime in reversed(list(self.runtimes.values())):
            await runtime.stop()
        self.runtimes.clear()


class Quiet(Periodic):
    """The loops of every quiet center of this process, in one pipeline.

    A center with no event for a while (`Pace`) stops its own loops; every
    `PRESENCE_IDLE_INTERVAL` this task does their work for all quiet
    centers at once, in one round trip: for those this process owns, the
    sweep (timeouts, leases, graces) and the escalation; for all, this
    process's connection counts when they changed or are getting old. (A
    wallboard makes its own process compute live KPIs: its center is
    never quiet there.) Its cost grows
    with the number of centers by a few Redis commands each, with no task
    waking per center.
    """

    name = "centers-quiet"

    def __init__(self, centers: Centers, *, interval: float) -> None:
        super().__init__(interval)
        self.centers = centers

    async def tick(self) -> None:
        c = self.centers
        quiet = [rt for rt in c.runtimes.values() if rt.pace is not None and not rt.pace.busy()]
        if not quiet:
            return
        grace = int(c.settings.grace_seconds * 1000)
        pipe = c.redis.pipeline(transaction=False)
        plan: list[tuple[Runtime, str]] = []
        for rt in quiet:
            store = rt.ctx.store
            k, now = store.keys, store.now_ms()
            if rt.owner:
                pipe.fcall(store.scripts.function("sweep"), 1, k.prefix, now, grace, 500)
                pipe.fcall(store.scripts.function("queue_escalate"), 1, k.prefix, now, 500)
                plan += [(rt, "sweep"), (rt, "escalate")]
            if rt.counters.due(now):
                pipe.hset(k.metrics_conns, rt.counters.process, rt.counters.payload(now))
                plan.append((rt, "conns"))
        if not plan:
            return
        await quiet[0].ctx.store.scripts.ensure_loaded()
        replies = await pipe.execute(raise_on_error=False)
        missing = False
        for (rt, what), reply in zip(plan, replies, strict=True):
            if isinstance(reply, Exception):
                missing = missing or "function not found" in str(reply).lower()
                if not missing:
                    log.warning("quiet tick of center %s (%s) failed: %s", rt.ctx.center.id, what, reply)
                continue
            if what in ("sweep", "escalate") and reply:
                rt.ctx.dispatcher.wake([q.decode() if isinstance(q, bytes) else str(q) for q in reply])
        if missing:
            # a Redis that lost our library: load it; the next tick goes through
            await quiet[0].ctx.store.scripts.ensure_loaded(again=True)


class Watch(Periodic):
    """Follows the registry and the live processes, once a second: starts the
    centers this process owns, hands over those it no longer owns, refreshes
    those re-applied, stops those removed. Three small reads and one write
    per tick, however many centers there are."""

    name = "centers-watch"
    tick_first = True

    def __init__(self, centers: Centers, *, interval: float = 1.0) -> None:
        super().__init__(interval)
        self.centers = centers

    async def tick(self) -> None:
        c = self.centers
        ws = c.workspaces
        assert ws is not None
        c.processes = await registry.live_processes(c.redis, c.process, stale_ms=int(PROCESS_STALE * 1000))
        revs = await registry.revisions(c.redis)
        default = ws.default.center.id
        for cid, rev in revs.items():
            if cid == default:
                continue
            runtime = c.runtimes.get(cid)
            owner = c.owns(cid)
            if runtime is None:
                if owner:
                    await ws.resolve(cid)
                continue
            if runtime.revision < rev:
                await c.refresh(cid)
            await runtime.set_owner(owner)
        for cid in [x for x in c.runtimes if x not in revs and x != default]:
            # read again: a center created (and started by its first token)
            # after `revs` was read is not a removed one
            if not await registry.exists(c.redis, cid):
                await c.stop_center(cid)

    async def stop(self) -> None:
        await super().stop()
        # leave the registry at once: the others take over this one's centers
        # on their next tick rather than after PROCESS_STALE
        with contextlib.suppress(Exception):
            await asyncio.wait_for(registry.leave(self.centers.redis, self.centers.process), 1.0)
