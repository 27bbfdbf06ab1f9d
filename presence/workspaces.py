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
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from presence.center import Center
from presence.config import Settings
from presence.context import STARTS_AT_ONCE, Context, Workspaces
from presence.kpi.counters import Counters
from presence.kpi.live import LiveKpis
from presence.kpi.rollup import Rollup
from presence.router.dispatcher import Dispatcher, Sweeper
from presence.router.escalator import Escalator
from presence.router.hours import HoursPlanner
from presence.schema import Invalid
from presence.services.archive import Archiver
from presence.services.cases import webhook_links
from presence.services.centers import parse_document
from presence.services.webhooks import Deliverer
from presence.store import Clock, Store
from presence.store import cases as case_store
from presence.store import centers as registry
from presence.store.client import Client, open_events
from presence.store.lock import holder_id
from presence.store.replication import Replication
from presence.tasks import Pace, Periodic
from presence.ws import endpoints
from presence.ws.hub import Hub

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
        redis: Client,
        settings: Settings,
        secret: str,
        hubs: dict[str, Hub],
        *,
        clock: Clock = time.time,
        url: str | None = None,
    ) -> None:
        self.redis = redis
        # where the event feeds' own client connects (None: they use `redis`)
        self.url = url
        self._events: Client | None = None
        self._events_lock = asyncio.Lock()
        # socket starts let in at once, for the process (all its centers):
        # what the warm pool is sized for (``client.warm``)
        self.starts = asyncio.Semaphore(STARTS_AT_ONCE)
        # set by `stop_all`: no center starts any more (a start in flight
        # when the process stops is stopped again at once)
        self.closing = False
        self.settings = settings
        self.secret = secret
        self.clock = clock
        # acknowledged changes reach a replica first, where the shard has one
        # (one for the process: it keeps what it learnt of each shard)
        self.replication = Replication(redis, settings.wait_replicas, settings.wait_timeout)
        # the app's `hubs` (``app.state.hubs``), which the websocket side reads
        self.hubs = hubs
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
        store = self._store(center.id)
        await store.sync_center(center, retention_days=self.settings.retention_days)
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
            default=True,
        )
        self.workspaces = Workspaces(runtime.ctx, self.start)
        self.workspaces.changed = self.changed
        await self._launch(runtime, owner=True)
        return runtime

    async def start(self, center_id: str) -> Context | None:
        """A registered center, started in this process; None when there is
        no such center (or its document no longer validates here)."""
        rev, center = await self._registered(center_id, "cannot start")
        if center is None:
            return None
        events = await self._events_client()
        if self.closing:
            return None
        runtime = self._runtime(self._store(center_id, events=events), center)
        runtime.revision = rev
        await self._launch(runtime, owner=self.owns(center_id))
        if self.closing:
            # the process began stopping meanwhile; `stop_all` may not have seen it
            if self.runtimes.get(center_id) is runtime:
                del self.runtimes[center_id]
                self.hubs.pop(center_id, None)
            await runtime.stop()
            return None
        log.info("center %s started", center_id)
        return runtime.ctx

    async def _registered(self, center_id: str, failed: str) -> tuple[int, Center | None]:
        """The center's revision in the registry and its document as a
        `Center`: None when it is gone or no longer validates here (logged,
        "center <id> `failed`: ...")."""
        rev = await registry.revision(self.redis, center_id)
        doc = await registry.document(self.redis, center_id)
        if doc is None:
            return rev, None
        try:
            return rev, parse_document(center_id, doc)
        except Invalid as exc:
            log.error("center %s %s: %s %s", center_id, failed, exc.field, exc.message)
            return rev, None

    def _store(self, center_id: str, *, events: Client | None = None) -> Store:
        """A center's store, as every center of the process has it: the
        process's clock, replication (WAIT) and time zone; `events`: the
        client of its event feed (the default center's is `redis`, as in a
        single-center deployment)."""
        return Store(
            self.redis,
            center_id,
            clock=self.clock,
            replication=self.replication,
            timezone=self.settings.timezone,
            events=events,
        )

    async def _events_client(self) -> Client:
        """The event feeds' client of the centers other than the default one
        (``client.open_events``), opened with the first of them."""
        if self.url is None or self.closing:
            return self.redis
        async with self._events_lock:
            if self._events is None:
                self._events = await open_events(self.url, self.settings.redis_mode)
            return self._events

    def _runtime(
        self,
        store: Store,
        center: Center,
        *,
        statuses: list[dict[str, Any]] | None = None,
        channels: list[dict[str, Any]] | None = None,
        default: bool = False,
    ) -> Runtime:
        """A center's runtime; the `default` one's loops never go quiet
        and its customers' links do not name it (as in a single-center
        deployment)."""
        s = self.settings
        dispatcher = Dispatcher(store)
        hub = Hub(store, s)
        hub.wake = dispatcher.wake
        webhooks = Deliverer(
            store,
            center.webhooks,
            poll=min(0.2, s.sweep_interval * 2),
            links=webhook_links(self.secret, center, center.id, named=not default),
        )
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
            starts=self.starts,
            named_links=not default,
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
        rollup = Rollup(
            store,
            retention_days=s.history_days,
            rollup_days=s.rollup_days,
            timezone=s.timezone,
            step_minutes=s.rollup_minutes,
            margin_ms=int(s.clock_margin_seconds * 1000),
        )
        # business hours: each queue's plan of openings renewed hourly
        planner = HoursPlanner(store)
        owned: list[Task] = [sweeper, escalator, planner, webhooks, rollup]
        if s.archive_dir is not None:
            # the scheduled archive: a leader lock makes it one process's anyway
            owned.append(Archiver(store, s.archive_dir, timezone=s.timezone))
        # quiet: its loops sleep, and `Quiet` does their work with the others'
        pace = None if default else Pace(idle=None, quiet_after=s.quiet_after)
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
            owned=owned,
            pace=pace,
        )

    async def _launch(self, runtime: Runtime, *, owner: bool) -> None:
        ctx = runtime.ctx
        center_id = ctx.center.id
        self.runtimes[center_id] = runtime
        self.hubs[center_id] = runtime.hub
        # each center's hub has its own sharded subscription (`Store.events`),
        # on the shard of the center's keys
        runtime.hub.start(lambda c: endpoints.resync(ctx, c))
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
        # taken even when the document fails: it is not read again every tick
        runtime.revision, center = await self._registered(center_id, "not refreshed")
        if center is None:
            return
        runtime.ctx.center = center
        webhooks = runtime.ctx.webhooks
        if webhooks is not None:
            # the survey link's validity is the document's (cases.survey_days)
            webhooks.links = webhook_links(self.secret, center, center_id, named=runtime.ctx.named_links)
        if webhooks is not None and webhooks.hooks != center.webhooks:
            if runtime.owner:
                await webhooks.stop()
            fresh = Deliverer(webhooks.store, center.webhooks, poll=webhooks.poll, links=webhooks.links)
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
        self.hubs.pop(center_id, None)
        await runtime.stop()
        log.info("center %s stopped", center_id)

    async def stop_all(self) -> None:
        self.closing = True
        while self.runtimes:
            _, runtime = self.runtimes.popitem()
            await runtime.stop()
        events, self._events = self._events, None
        if events is not None:
            await events.aclose()


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
            counts = rt.counters.report(now)
            if counts is not None:
                pipe.hset(k.metrics_conns, rt.counters.process, counts)
                plan.append((rt, "conns"))
        if not plan:
            return
        # called first, loaded on a miss (as `Scripts._fcall` does): the
        # server's start loaded the library on every primary
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
            await quiet[0].ctx.store.scripts.reload()


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
