"""What every HTTP route shares: the context, the token check, the JSON
body and a JSON answer.

Handlers are thin: authenticate, parse, call the store or a service,
answer JSON. Every refusal is a problem+json (`presence.problems`), raised
as an exception and answered by ``presence/http/errors.py``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from presence.auth import AuthError, Claims, bearer, verify
from presence.context import Context
from presence.problems import Problem

MAX_BODY = 256 * 1024

# who may call a route, by token role
ADMIN = ("supervisor", "service")
ANY = ("agent", "supervisor", "service")


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def require(request: Request, *roles: str) -> Claims:
    try:
        claims = verify(ctx_of(request).secret, bearer(request.headers.get("authorization")))
    except AuthError as exc:
        raise Problem(
            401,
            str(exc),
            code="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="presence"'},
        ) from None
    if claims.role not in roles:
        raise Problem(
            403,
            f"this needs a {' or '.join(roles)} token; yours is {claims.role}",
            code="forbidden",
        )
    return claims


async def read_json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise Problem(415, "send the body as application/json", code="media_type")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, f"the body must be at most {MAX_BODY} bytes", code="too_large")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", code="bad_json") from None
