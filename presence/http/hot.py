"""The intake routes called straight from the app, past Starlette's stack.

Every request to a Starlette app crosses its error middleware, its
exception middleware, the router (a pattern tried per route), the route and
the route's own exception wrapper, each a coroutine with a ``send`` of its
own that the response's messages go through again on the way out. For the
intake (``POST /api/v1/work`` and ``POST /api/v1/work:batch``, one request
per item at the rates a center runs) that chain costs more than the
endpoint's own Python. `App` calls those endpoints itself and answers what
they raise as the stack does (the app's exception handlers, by the
exception's class; anything unhandled answered 500 by the app's handler,
then raised for the server to log); every other request, a root path, a
path with a trailing slash, another method, goes to Starlette as before.

The websocket routes of `hot_ws` (``/ws/agent``, ``/ws/supervisor``) are
entered at the route's own app (Starlette's `websocket_session`, with its
exception handling), with the scope the stack above it would have set: a
socket's task sits in its endpoint for the socket's life, and each time it
resumes (every message) Python resumes every coroutine frame above it,
seven of them Starlette's stack. None of this is taken when the app has
middleware of its own, a body size limit or debug on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class App(Starlette):
    """Starlette, with the routes of `hot` (POST, by exact path) called here."""

    def __init__(
        self, *, hot: Mapping[str, Endpoint], hot_ws: Sequence[WebSocketRoute] = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        # only where nothing else sits between the app and its routes
        plain = getattr(self, "max_body_size", None) is None and not self.user_middleware and not self.debug
        self._hot = dict(hot) if plain else {}
        handlers: dict[Any, Handler] = dict(kwargs.get("exception_handlers") or {})
        # what Starlette gives its error middleware (ServerErrorMiddleware)
        self._crash: Handler | None = handlers.pop(Exception, None) or handlers.pop(500, None)
        # and its exception middleware, by status (HTTPException) and by class
        self._by_status = {k: v for k, v in handlers.items() if isinstance(k, int)}
        self._by_class = {k: v for k, v in handlers.items() if not isinstance(k, int)}
        # A websocket route's own app (Starlette's `websocket_session`) finds
        # the handlers where the exception middleware puts them, in the scope:
        # the middleware's own, so they are the same (its defaults included).
        middleware = ExceptionMiddleware(self.router, handlers=handlers)
        self._ws_handlers = (
            getattr(middleware, "_exception_handlers", None),
            getattr(middleware, "_status_handlers", None),
        )
        ok = plain and None not in self._ws_handlers
        self._hot_ws = {r.path: r for r in hot_ws if ok and "{" not in r.path}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self._hot.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await self._call(endpoint, scope, receive, send)
                return
        elif kind == "websocket" and not scope.get("root_path"):
            route = self._hot_ws.get(scope["path"])
            if route is not None:
                # what the middleware, the router and the route set on the way
                scope["app"] = self
                scope["starlette.exception_handlers"] = self._ws_handlers
                scope.setdefault("router", self.router)
                scope["route"] = route
                scope.update(endpoint=route.endpoint, path_params={})
                # a socket's task resumes through every frame above its
                # endpoint at each message: these are the route's own only
                await route.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        if isinstance(exc, HTTPException) and exc.status_code in self._by_status:
            return self._by_status[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in self._by_class:
                return self._by_class[cls]
        return None

    async def _call(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            try:
                response = await endpoint(request)
            except Exception as exc:
                handler = self._handler(exc)
                if handler is None:
                    raise
                response = await handler(request, exc)
                # a reused exception instance would gather tracebacks (as Starlette does)
                exc.__traceback__ = None
        except Exception as exc:
            # unhandled, or its handler failed: answered 500, then raised
            # (the server logs it), as the error middleware does
            if self._crash is not None:
                answer = await self._crash(request, exc)
            else:
                answer = PlainTextResponse("Internal Server Error", status_code=500)
            await answer(scope, receive, send)
            raise
        await response(scope, receive, send)
