"""How an exception becomes an HTTP answer: the app's exception handlers.

A route raises; it never builds an error response itself. A `Problem` is
answered as it says; a script's refusal (`ScriptError`) by its code, through
`SCRIPT_STATUS` (`script_problem`, the only place that mapping is made);
Starlette's own refusals (no route, wrong method) as problems too; a Redis
outage is a 503 with Retry-After, never a hang, and a full Redis (maxmemory
reached) a 503 with code ``store_full``; and anything else is logged
once and answered 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import OutOfMemoryError, RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from presence.problems import SCRIPT_STATUS, Problem
from presence.store import ScriptError
from presence.store.replication import NotReplicated

log = logging.getLogger("presence.app")


def script_problem(exc: ScriptError) -> Problem:
    """A script's refusal as a problem: its code decides the status (400 for
    a code the map does not know), its field and sentence are kept."""
    status = SCRIPT_STATUS.get(exc.code, 400)
    # a store unavailable for a moment (store/scripts.py _MOVING): retry soon
    headers = {"Retry-After": "1"} if status == 503 else None
    return Problem(status, exc.message, field=exc.field, code=exc.code, headers=headers)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


async def _script_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScriptError)
    problem = script_problem(exc)
    if problem.status == 503:
        log.warning("request failed, Redis unavailable: %s", exc.message)
    elif problem.status >= 500:
        # a script that failed rather than refused: a bug, not a bad request
        log.error("script failed on %s %s: %s", request.method, request.url.path, exc.message)
    return problem.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404:
        detail = f"no route for {request.method} {request.url.path}"
    return Problem(exc.status_code, detail).response()


def _unavailable(detail: str, code: str = "unavailable", retry_after: int = 1) -> Response:
    """A 503 for a request the store could not take now: retry after `retry_after` s."""
    return Problem(503, detail, code=code, headers={"Retry-After": str(retry_after)}).response()


async def _redis_down(request: Request, exc: Exception) -> Response:
    log.warning("request failed, Redis unavailable: %s", exc)
    return _unavailable("the server's store (Redis) is unavailable; try again shortly")


async def _redis_full(request: Request, exc: Exception) -> Response:
    # refused before the script's first write (store/scripts.py READ_ONLY):
    # nothing of the request was applied, so a retry later is safe
    log.warning("request refused, Redis is full: %s", exc)
    return _unavailable(
        "the server's store (Redis) is full: maxmemory reached and nothing may be evicted; "
        "nothing was changed, try again once memory is freed",
        code="store_full",
        retry_after=30,
    )


async def _not_replicated(request: Request, exc: Exception) -> Response:
    # the primary has the change, no replica confirmed it in time: not
    # acknowledged, as a primary lost now would take it along
    log.warning("request not acknowledged, no replica confirmed it: %s", exc)
    return _unavailable(
        f"the change was not confirmed by a replica of the store in time ({exc}); "
        "retry it (with the same Idempotency-Key for an intake)"
    )


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Problem(500, "internal error; it has been logged", code="internal").response()


HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    Problem: _problem,
    ScriptError: _script_refused,
    HTTPException: _http_error,
    OutOfMemoryError: _redis_full,
    NotReplicated: _not_replicated,
    RedisError: _redis_down,
    Exception: _crash,
}
