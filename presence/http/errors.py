"""How an exception becomes an HTTP answer: the app's exception handlers.

A route raises; it never builds an error response itself. A `Problem` is
answered as it says; Starlette's own refusals (no route, wrong method) as
problems too; a Redis outage is a 503 with Retry-After, never a hang; and
anything else is logged once and answered 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from presence.problems import Problem

log = logging.getLogger("presence.app")


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


HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    Problem: _problem,
    HTTPException: _http_error,
    RedisError: _redis_down,
    Exception: _crash,
}
