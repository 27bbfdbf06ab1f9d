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
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from presence import api, cases, channels, demo, metrics_http, openapi, reports, ws
from presence.auth import RedactTokens, load_or_create_secret
from presence.center import load_center
from presence.config import Settings
from presence.embedded import EmbeddedRedis
from presence.hub import Hub
from presence.kpi.counters import Counters
from presence.kpi.live import LiveKpis
from presence.kpi.rollup import Rollup
from presence.overflow import Escalator
from presence.problems import Problem
from presence.router.dispatcher import Dispatcher, Sweeper
from presence.stalls import StallWatch
from presence.store import Store
from presence.webhooks import Deliverer

log = logging.getLogger("presence.app")

STATIC = Path(str(resources.files("presence").joinpath("static")))

# The cyclic collector's thresholds while serving (Python's default: 700, 10,
# 10). Every idle socket keeps a few hundred tracked objects alive, and a
# full collection walks all of them: with the default, a 10,000-agent
# connect-drop-reconnect run made 24 full collections of ~0.8 s each (20 s
# of a 60 s run, every socket of the process stalled meanwhile; see
# docs/PERFORMANCE.md). Young collections still run every 50,000 net
# allocations, so short-lived cycles are freed as before; full collections
# become rare. A closed socket is freed by reference counting, not by the
# collector (ws._stop_sender), so this does not let dead sockets pile up.
GC_THRESHOLDS = (50_000, 20, 10)


def redis_client(url: str) -> Redis:
    # Short timeouts and a bounded retry: a Redis outage must turn into a
    # clear error within seconds, never a hang (readyz, websocket errors).
    # A blocking pool: a burst of more concurrent calls than connections
    # (a reconnect storm, a flood of intake) waits briefly for a free
    # connection instead of failing at once with "Too many connections".
    # The asyncio `Retry` (not `redis.retry.Retry`, whose synchronous loop
    # never sees the awaited error): after a Redis restart every pooled
    # connection is stale, and each must reconnect and retry, not fail.
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=False,
        socket_timeout=3.0,
        socket_connect_timeout=2.0,
        # Retry only a connection that failed (stale after a restart, refused
        # while Redis comes back): the command did not reach Redis, except
        # if it crashed mid-command (RELIABILITY.md). Not a timeout: the
        # script may be running on a slow or paused Redis, and a second run
        # of a non-idempotent change (create, accept) would apply it twice.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
        health_check_interval=10,
        max_connections=256,
        timeout=5.0,
    )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client


async def _wait_for_redis(redis: Redis, url: str, patience: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            await redis.ping()
            return
        except RedisError as exc:
            if loop.time() > deadline:
                raise RuntimeError(
                    f"Redis at REDIS_URL={url} did not answer for {patience:.0f}s: {exc}"
                ) from exc
            await asyncio.sleep(0.2)


def _page(name: str) -> Route:
    async def page(request: Request) -> Response:
        path = STATIC / f"{name}.html"
        if not path.exists():
            raise Problem(404, f"the {name} page is not installed", code="not_found")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    return Route(f"/{name}", page)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404:
        detail = f"no route for {request.method} {request.url.path}"
    return Problem(exc.status_code, detail).response()


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("request failed, Redis unavailable: %s", exc)
    return Problem(
        503,
        "the server's store (Redis) is unavailable; try again shortly",
        code="unavailable",
        headers={"Retry-After": "1"},
    ).response()


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Problem(500, "internal error; it has been logged", code="internal").response()


def create_app(settings: Settings | None = None) -> Starlette:
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
        redis = redis_client(url)
        await _wait_for_redis(redis, url)
        store = Store(redis, center.id)
        await store.sync_center(center)
        await cases.sync_config(store, center)
        dispatcher = Dispatcher(store)
        hub = Hub(store, settings)
        hub.wake = dispatcher.wake
        sweeper = Sweeper(store, dispatcher, interval=settings.sweep_interval, grace=settings.grace_seconds)
        ctx = ws.Context(
            store=store,
            hub=hub,
            dispatcher=dispatcher,
            secret=secret,
            grace=settings.grace_seconds,
            lease=settings.lease_seconds,
            allowed_origins=settings.allowed_origins,
            rate_per_second=settings.rate_per_second,
            rate_burst=settings.rate_burst,
            # written by sync_center above; read once, not on every snapshot
            statuses=await store.statuses(),
            channels=await store.channels(),
        )
        app.state.ctx = ctx
        app.state.settings = settings
        app.state.center = center
        hub.start(lambda c: ws.resync(ctx, c))
        dispatcher.start()
        sweeper.start()
        # cases: overflow/relaxation timer and outbound webhooks (presence/channels/)
        escalator = Escalator(store, dispatcher, interval=settings.sweep_interval)
        escalator.start()
        webhooks = Deliverer(store, center.webhooks, poll=min(0.2, settings.sweep_interval * 2))
        webhooks.start()
        app.state.webhooks = webhooks
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
        for task in (live, counters, history):
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
            for task in (history, counters, live):
                await task.stop()
            await webhooks.stop()
            await escalator.stop()
            await sweeper.stop()
            await dispatcher.stop()
            await hub.stop()
            await redis.aclose()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    routes = [
        *api.ROUTES,
        openapi.ROUTE,
        *reports.ROUTES,
        metrics_http.ROUTE,
        WebSocketRoute("/ws/agent", ws.agent_endpoint),
        WebSocketRoute("/ws/supervisor", ws.supervisor_endpoint),
        _page("agent"),
        _page("wallboard"),
        _page("contact"),
        *channels.ROUTES,
        Route("/", lambda request: RedirectResponse("/wallboard")),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Problem: _problem,
            HTTPException: _http_error,
            RedisError: _redis_down,
            Exception: _crash,
        },
    )
