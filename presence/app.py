"""The application: routes and lifespan, assembled; nothing else lives here.

`create_app()` is the uvicorn factory (``presence.app:create_app``). The
lifespan connects to Redis (or starts the embedded one), writes the center's
configuration, and starts this process's hub, dispatcher and sweeper; on
shutdown it stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from presence import demo
from presence.auth import RedactTokens, load_or_create_secret
from presence.center import load_center
from presence.config import Settings
from presence.context import Context
from presence.embedded import EmbeddedRedis
from presence.http import (
    admin,
    asyncapi,
    cases,
    channels,
    errors,
    health,
    metrics,
    openapi,
    pages,
    reports,
    status,
    survey,
    templates,
    work,
)
from presence.kpi.counters import Counters
from presence.kpi.live import LiveKpis
from presence.kpi.rollup import Rollup
from presence.router.dispatcher import Dispatcher, Sweeper
from presence.router.escalator import Escalator
from presence.router.hours import HoursPlanner
from presence.services.archive import Archiver
from presence.services.cases import webhook_links
from presence.services.webhooks import Deliverer
from presence.stalls import StallWatch
from presence.store import Clock, Store
from presence.store import cases as case_store
from presence.store.client import open_redis
from presence.store.replication import Replication
from presence.tasks import Periodic
from presence.ws import endpoints
from presence.ws.hub import Hub

log = logging.getLogger("presence.app")

# The cyclic collector's thresholds while serving (Python's default: 700, 10,
# 10). Every idle socket keeps a few hundred tracked objects alive, and a
# full collection walks all of them: with the default, a 10,000-agent
# connect-drop-reconnect run made 24 full collections of ~0.8 s each (20 s
# of a 60 s run, every socket of the process stalled meanwhile; see
# docs/PERFORMANCE.md). Young collections still run every 50,000 net
# allocations, so short-lived cycles are freed as before; full collections
# become rare. A closed socket is freed by reference counting, not by the
# collector (ws/session.py, _stop_sender), so this does not let dead sockets
# pile up.
GC_THRESHOLDS = (50_000, 20, 10)


def create_app(settings: Settings | None = None, *, clock: Clock = time.time) -> Starlette:
    """The app; `clock` is the wall clock of every rule with a deadline
    (offer timeouts, wrap-up, grace, token expiry), injectable for tests."""
    settings = settings or Settings.from_env()
    center = load_center(settings.center_config)
    for name in ("uvicorn.error", "uvicorn.access", "presence"):
        logging.getLogger(name).addFilter(RedactTokens())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedRedis | None = None
        url = settings.redis_url
        if url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            url = await asyncio.to_thread(embedded.start)
        secret = settings.secret or load_or_create_secret(settings.data_dir)[0]
        redis = await open_redis(url, settings.redis_mode)
        # acknowledged changes reach a replica first, where the shard has one
        replication = Replication(redis, settings.wait_replicas, settings.wait_timeout)
        store = Store(redis, center.id, clock=clock, replication=replication, timezone=settings.timezone)
        await store.sync_center(center, retention_days=settings.retention_days)
        await case_store.sync_config(store, center)
        dispatcher = Dispatcher(store)
        hub = Hub(store, settings)
        hub.wake = dispatcher.wake
        sweeper = Sweeper(store, dispatcher, interval=settings.sweep_interval, grace=settings.grace_seconds)
        webhooks = Deliverer(
            store,
            center.webhooks,
            poll=min(0.2, settings.sweep_interval * 2),
            links=webhook_links(secret, center, center.id),
        )
        ctx = Context(
            store=store,
            dispatcher=dispatcher,
            center=center,
            secret=secret,
            grace=settings.grace_seconds,
            lease=settings.lease_seconds,
            allowed_origins=settings.allowed_origins,
            rate_per_second=settings.rate_per_second,
            rate_burst=settings.rate_burst,
            listening=hub.listening,
            webhooks=webhooks,
            # written by sync_center above; read once, not on every snapshot
            statuses=await store.statuses(),
            channels=await store.channels(),
        )
        app.state.ctx = ctx
        app.state.hub = hub
        app.state.settings = settings
        hub.start(lambda c: endpoints.resync(ctx, c))
        dispatcher.start()
        sweeper.start()
        # overflow/relaxation timer and outbound webhooks
        escalator = Escalator(store, dispatcher, interval=settings.sweep_interval)
        escalator.start()
        # business hours: each queue's plan of openings renewed hourly
        planner = HoursPlanner(store)
        planner.start()
        webhooks.start()
        # KPIs: the live wallboard figures, the Prometheus counters, the roll-up
        live = LiveKpis(
            store,
            hub.push_supervisors,
            interval=settings.kpi_interval,
            timezone=settings.timezone,
            has_audience=lambda: bool(hub.supervisors),
        )
        counters = Counters(store, lambda: hub.connection_count)
        history = Rollup(
            store,
            retention_days=settings.history_days,
            rollup_days=settings.rollup_days,
            timezone=settings.timezone,
        )
        tasks: list[LiveKpis | Periodic] = [live, counters, history]
        if settings.archive_dir is not None:
            tasks.append(Archiver(store, settings.archive_dir, timezone=settings.timezone))
        for task in tasks:
            task.start()
        dispatcher.wake(await store.queue_names())
        # what start-up built lives as long as the process: keep it out of
        # every later collection
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        watch: StallWatch | None = None
        if settings.stall_ms > 0:
            watch = StallWatch(settings.stall_ms)
            watch.start()
        # "ready" in the log means what /readyz says: logged before the
        # listener had subscribed, a probe that trusted the line got a 503
        await hub.listening.wait()
        log.info("presence ready: center %s, Redis %s", center.id, url.split("@")[-1])
        demo_run: demo.Demo | None = None
        if demo.enabled():
            demo_run = demo.Demo(
                store,
                dispatcher,
                secret=secret,
                lease=settings.lease_seconds,
                grace=settings.grace_seconds,
                base_url=f"http://{settings.host}:{settings.port}",
            )
            demo_run.start()
        try:
            yield
        finally:
            if watch is not None:
                watch.stop()
            if demo_run is not None:
                await demo_run.stop()
            for task in reversed(tasks):
                await task.stop()
            await webhooks.stop()
            await planner.stop()
            await escalator.stop()
            await sweeper.stop()
            await dispatcher.stop()
            await hub.stop()
            await redis.aclose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    routes = [
        *health.ROUTES,
        *admin.ROUTES,
        *work.ROUTES,
        openapi.ROUTE,
        asyncapi.ROUTE,
        *reports.ROUTES,
        metrics.ROUTE,
        *endpoints.ROUTES,
        *pages.PAGES,
        *channels.ROUTES,
        *cases.ROUTES,
        *templates.ROUTES,
        *status.ROUTES,
        *survey.ROUTES,
        *pages.HOME,
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=errors.HANDLERS)
