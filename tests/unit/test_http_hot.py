"""The intake routes called by the app itself (`presence.http.hot.App`):
every answer, a refusal or a crash, is the one Starlette's stack gives for
the same route, and every other request still goes through that stack."""

from __future__ import annotations

import logging

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from presence.http import errors
from presence.http.hot import App
from presence.problems import Problem
from presence.store import ScriptError
from presence.store.replication import NotReplicated

RAISES: dict[str, Exception] = {
    "problem": Problem(422, "queue must be a name", field="queue", code="invalid"),
    "script": ScriptError("unknown_queue", "queue", "no queue q"),
    "http": HTTPException(405),
    "redis": RedisConnectionError("Redis went away"),
    "full": OutOfMemoryError("OOM command not allowed"),
    "replicas": NotReplicated("only 0 of 1 replica(s)"),
    "bug": KeyError("a bug"),
}

PATH = "/api/v1/work:batch"


async def intake(request: Request) -> Response:
    what = (await request.body()).decode()
    if what in RAISES:
        raise RAISES[what]
    return JSONResponse({"path": request.url.path, "body": what, "app": request.app is not None}, 207)


def _apps() -> tuple[Starlette, App]:
    routes = [Route(PATH, intake, methods=["POST"]), Route("/api/v1/work", intake, methods=["POST"])]
    plain = Starlette(routes=routes, exception_handlers=errors.HANDLERS)
    hot = App(hot={PATH: intake}, routes=routes, exception_handlers=errors.HANDLERS)
    return plain, hot


async def _send(
    app: Starlette, method: str, path: str, body: str = "", root_path: str = ""
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, content=body)


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    drop = {"content-length"}
    assert {k: v for k, v in a.headers.items() if k not in drop} == {
        k: v for k, v in b.headers.items() if k not in drop
    }


@pytest.mark.parametrize("body", ["ok", *RAISES])
async def test_the_hot_route_answers_as_starlettes_stack(body: str, caplog: pytest.LogCaptureFixture) -> None:
    plain, hot = _apps()
    with caplog.at_level(logging.ERROR, logger="presence.app"):
        want = await _send(plain, "POST", PATH, body)
        logged = [r.getMessage() for r in caplog.records]
        caplog.clear()
        got = await _send(hot, "POST", PATH, body)
        assert [r.getMessage() for r in caplog.records] == logged  # a crash is logged once, alike
    _same(got, want)
    assert got.status_code == {"ok": 207, "bug": 500}.get(body, got.status_code)


async def test_a_crash_is_raised_to_the_server_after_its_500() -> None:
    _, hot = _apps()
    transport = httpx.ASGITransport(app=hot, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with pytest.raises(KeyError):
            await client.post(PATH, content="bug")


@pytest.mark.parametrize(
    "method, path, root_path",
    [
        ("GET", PATH, ""),  # another method: 405 from the router
        ("POST", PATH + "/", ""),  # the router's own answer to a trailing slash
        ("POST", "/api/v1/work", ""),  # a route not in `hot`
        ("POST", "/api/v1/nothing", ""),  # 404
        ("POST", PATH, "/prefix"),  # behind a root path: the router's matching
    ],
)
async def test_anything_else_goes_to_starlette(method: str, path: str, root_path: str) -> None:
    plain, hot = _apps()
    full = root_path + path
    _same(await _send(hot, method, full, "ok", root_path), await _send(plain, method, full, "ok", root_path))


async def test_the_intake_routes_are_the_apps_hot_ones() -> None:
    from presence.app import create_app
    from presence.http import work

    app = create_app()
    assert isinstance(app, App) and app._hot == work.HOT
    assert set(work.HOT.values()) <= {r.endpoint for r in app.routes if isinstance(r, Route)}
