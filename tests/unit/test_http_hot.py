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
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

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
    from presence.ws import endpoints

    app = create_app()
    assert isinstance(app, App) and app._hot == work.HOT
    assert list(app._hot_ws.values()) == endpoints.ROUTES
    assert set(work.HOT.values()) <= {r.endpoint for r in app.routes if isinstance(r, Route)}


async def _ws_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    while True:
        text = await ws.receive_text()
        if text == "raise":
            raise WebSocketException(4001, "refused")
        if text == "bug":
            raise KeyError("a bug")
        scope = ws.scope
        await ws.send_json(
            {
                "route": scope["route"].path,
                "endpoint": scope["endpoint"] is _ws_endpoint,
                "router": scope["router"] is ws.app.router,
                "params": scope["path_params"],
                "handlers": sorted(str(k) for k in scope["starlette.exception_handlers"][0]),
            }
        )


def _ws_apps(**kwargs: object) -> tuple[Starlette, App]:
    routes = [WebSocketRoute("/ws/agent", _ws_endpoint)]
    plain = Starlette(routes=routes, exception_handlers=errors.HANDLERS)
    hot = App(hot={}, hot_ws=routes, routes=routes, exception_handlers=errors.HANDLERS, **kwargs)
    return plain, hot


async def _ws_talk(app: Starlette, last: str) -> tuple[list[dict[str, object]], str]:
    """A socket on /ws/agent driven by hand: what the app sent, and how its
    task ended (an exception's name, or "ok")."""
    inbox = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.receive", "text": last},
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws/agent", "root_path": "", "headers": [], "query_string": b""}
    scope |= {"scheme": "ws", "server": ("test", 80), "client": ("c", 1), "subprotocols": []}
    try:
        await app(scope, receive, send)  # type: ignore[arg-type]
    except Exception as exc:
        return sent, type(exc).__name__
    return sent, "ok"


@pytest.mark.parametrize("last", ["raise", "bug"])
async def test_a_hot_socket_sees_the_scope_and_handlers_the_stack_gives(last: str) -> None:
    plain, hot = _ws_apps()
    assert hot._hot_ws  # taken
    got, want = await _ws_talk(hot, last), await _ws_talk(plain, last)
    assert got == want
    # a WebSocketException is the middleware's default handler's (a close
    # with its code); anything else reaches the server
    end = {"raise": (3, "ok"), "bug": (2, "KeyError")}[last]
    assert (len(got[0]), got[1]) == end, got
    if last == "raise":
        assert got[0][-1] == {"type": "websocket.close", "code": 4001, "reason": "refused"}


def test_nothing_is_taken_past_middleware_of_the_apps_own() -> None:
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware

    _, hot = _ws_apps(middleware=[Middleware(GZipMiddleware)])
    assert not hot._hot_ws and not hot._hot


async def test_a_handler_that_fails_is_a_500_as_through_the_stack() -> None:
    async def failing(request: Request, exc: Exception) -> Response:
        raise RuntimeError("the handler broke")

    handlers = {**errors.HANDLERS, Problem: failing}
    routes = [Route(PATH, intake, methods=["POST"])]
    plain = Starlette(routes=routes, exception_handlers=handlers)
    hot = App(hot={PATH: intake}, routes=routes, exception_handlers=handlers)
    got, want = await _send(hot, "POST", PATH, "problem"), await _send(plain, "POST", PATH, "problem")
    _same(got, want)
    assert got.status_code == 500
