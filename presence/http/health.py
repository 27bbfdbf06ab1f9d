"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve:
Redis answers, has room to write, and the event listener is subscribed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.http.common import ctx_of, json
from presence.problems import Problem


async def healthz(request: Request) -> Response:
    return json({"status": "ok"})


async def readyz(request: Request) -> Response:
    ctx = ctx_of(request)
    try:
        await ctx.store.ping()
    except Exception as exc:  # any failure to reach Redis means not ready
        return Problem(503, f"Redis is not answering: {type(exc).__name__}", code="not_ready").response()
    try:
        memory = await ctx.store.memory()
    except Exception as exc:
        return Problem(503, f"Redis is not answering: {type(exc).__name__}", code="not_ready").response()
    if memory.full:
        # reads go on, but no change can be made: not ready for traffic
        return Problem(503, memory.sentence(), code="store_full").response()
    if not ctx.listening.is_set():
        return Problem(503, "the event listener is not subscribed yet", code="not_ready").response()
    return json({"status": "ready"})


ROUTES = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
]
