"""The application: routes and lifespan, assembled; nothing else lives here.

`create_app()` is the uvicorn factory (``presence.app:create_app``). The
lifespan connects to Redis (or starts the embedded one), writes the default
center's configuration, and starts its hub, dispatcher and background loops
(``presence/workspaces.py``, which starts any other center the same way);
on shutdown it stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from presence import demo, gcpause
from presence.auth import RedactTokens, load_or_create_secret
from presence.center import load_center
from presence.config import Settings
from presence.context import STARTS_AT_ONCE
from presence.embedded import EmbeddedRedis
from presence.http import (
    admin,
    asyncapi,
    cases,
    centers,
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
from presence.http.hot import App
from presence.stalls import StallWatch
from presence.store import Clock
from presence.store.client import open_redis, warm
from presence.workspaces import Centers as Runtimes
from presence.workspaces import Quiet, Watch
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
        # the default center (the file's) starts with the process; any other
        # is started when its first token arrives or the watch sees it
        hubs: dict[str, Hub] = {}
        runtimes = Runtimes(redis, settings, secret, hubs, clock=clock, url=url)
        try:
            # the socket starts let in at once, and the background tasks
            await warm(redis, STARTS_AT_ONCE + 16)
            default = await runtimes.start_default(center)
        except BaseException:
            # a start that fails writing the center leaves no connection open
            # (an app served in a test process outlives its failed start)
            await runtimes.stop_all()
            await redis.aclose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            raise
        assert runtimes.workspaces is not None
        ctx = default.ctx
        hub = default.hub
        app.state.centers = runtimes.workspaces
        app.state.hubs = hubs
        app.state.settings = settings
        watch_centers = Watch(runtimes)
        watch_centers.start()
        # the loops of every quiet center, in one pipeline per idle interval
        quiet_centers = Quiet(runtimes, interval=settings.idle_interval)
        quiet_centers.start()
        # what start-up built lives as long as the process: keep it out of
        # every later collection
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        gcpause.install()  # presence_gc_pause_seconds on /metrics
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
                ctx.store,
                ctx.dispatcher,
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
            await quiet_centers.stop()
            await watch_centers.stop()
            await runtimes.stop_all()
            await redis.aclose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    # Starlette tries the routes in order, one pattern each: the intake
    # routes, hit once per item posted, come first (no route before them
    # could match their paths, so nothing else changes)
    routes = [
        *work.ROUTES,
        *health.ROUTES,
        *admin.ROUTES,
        openapi.ROUTE,
        asyncapi.ROUTE,
        *reports.ROUTES,
        metrics.ROUTE,
        *endpoints.ROUTES,
        *pages.PAGES,
        *channels.ROUTES,
        *cases.ROUTES,
        *centers.ROUTES,
        *templates.ROUTES,
        *status.ROUTES,
        *survey.ROUTES,
        *pages.HOME,
    ]
    return App(
        hot=work.HOT,
        hot_ws=endpoints.ROUTES,
        routes=routes,
        lifespan=lifespan,
        exception_handlers=errors.HANDLERS,
    )
