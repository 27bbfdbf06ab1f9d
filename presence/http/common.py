"""What every HTTP route shares: the context, the token check, the body a
route takes, its path parameters, and a JSON answer.

Handlers are thin: authenticate, read the body, call the store or a
service, answer JSON. Every refusal is a problem+json (`presence.problems`),
raised as an exception and answered by ``presence/http/errors.py``.

A route that reads a body says which schema it decodes with `takes`, and
that declaration is the only one: the handler receives a `Body` that decodes
with it, and ``presence/http/openapi.py`` publishes the same schema (`BODIES`).
Path parameters are checked, and published, by their name (`PATH`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Final, Generic, TypeVar

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from presence.auth import PLATFORM, AuthError, Claims, bearer, verify
from presence.context import Context, Workspaces
from presence.problems import Problem
from presence.schema import Invalid, Malformed, convert, decode, value
from presence.schema.cases import LinkToken
from presence.schema.channels import CallId
from presence.schema.common import AgentId, CenterId, ChannelName, CustomerId, Name, QueueName, WorkId
from presence.store.limits import rate_hit

MAX_BODY = 256 * 1024
JSON: Final = "application/json"
FORM: Final = ("application/x-www-form-urlencoded", "multipart/form-data")

# who may call a route, by token role
ADMIN = ("supervisor", "service")
ANY = ("agent", "supervisor", "service")
# the centers themselves (/api/v1/centers)
PLATFORM_ONLY = (PLATFORM,)


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON, headers=headers)


def centers_of(request: Request) -> Workspaces:
    centers: Workspaces = request.app.state.centers
    return centers


def ctx_of(request: Request) -> Context:
    """The context of the request's center: its token's, once `require` has
    checked it (the default center for the public routes)."""
    ctx: Context | None = getattr(request.state, "ctx", None)
    return ctx if ctx is not None else centers_of(request).default


async def use_center(request: Request, center_id: str | None) -> Context | None:
    """Make center `center_id` (None: the default) the request's (what every
    later `ctx_of` answers) and return its context; None, and nothing
    changed, when there is no such center."""
    ctx = await centers_of(request).resolve(center_id)
    if ctx is not None:
        request.state.ctx = ctx
    return ctx


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, code="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="presence"'})


async def require(request: Request, *roles: str) -> Claims:
    """The request's token claims, when it is valid and of one of `roles`
    (401, 403 otherwise); a center's token also selects the context every
    later `ctx_of` answers, and a token of a center that does not exist is
    refused (401 naming it)."""
    centers = centers_of(request)
    try:
        claims = verify(centers.default.secret, bearer(request.headers.get("authorization")))
    except AuthError as exc:
        raise _unauthorized(str(exc)) from None
    if claims.role != PLATFORM and await use_center(request, claims.center) is None:
        raise _unauthorized(f"the token's center {claims.center!r} does not exist")
    if claims.role not in roles:
        raise Problem(
            403,
            f"this needs a {' or '.join(roles)} token; yours is {claims.role}",
            code="forbidden",
        )
    return claims


def invalid(exc: Invalid, *, prefix: tuple[str | int, ...] = ()) -> Problem:
    """A schema refusal as its problem: 422 naming the field (400 when the
    document is not an object at all)."""
    if not exc.path and not prefix:
        return Problem(400, "the body must be a JSON object", field="body", code="bad_body")
    found = Invalid.at((*prefix, *exc.path), exc.message, status=exc.status)
    code = "too_large" if found.status == 413 else "invalid"
    return Problem(
        found.status, f"{found.field} {found.message}", field=found.field, code=code, pointer=found.pointer
    )


async def read_bytes(request: Request) -> bytes:
    """The body of a JSON request (415 for another media type, 413 past MAX_BODY)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (JSON, ""):
        raise Problem(415, "send the body as application/json", code="media_type")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, f"the body must be at most {MAX_BODY} bytes", code="too_large")
    return body


# -- the body a route takes --------------------------------------------------------------

B = TypeVar("B")


@dataclass(frozen=True, slots=True)
class BodySpec(Generic[B]):
    """The schema a route decodes its body with, and how it is sent."""

    type: type[B]
    # False: a request may come without a body (the schema's defaults apply)
    required: bool = True
    media: tuple[str, ...] = (JSON,)


class Body(Generic[B]):
    """A request's body, decoded by its route's schema when the handler asks
    (after its token check, so a stranger learns nothing of the schema)."""

    def __init__(self, request: Request, spec: BodySpec[B]) -> None:
        self.request = request
        self.spec = spec

    async def __call__(self) -> B:
        try:
            return await self.parse()
        except Invalid as exc:
            raise invalid(exc) from None

    async def parse(self) -> B:
        """The decoded body; `Invalid` (not yet a problem) when it breaks the schema."""
        if self.spec.media != (JSON,):
            form = await self.form()
            return convert({k: v for k, v in form.multi_items() if isinstance(v, str)}, self.spec.type)
        if not self.spec.required and not int(self.request.headers.get("content-length") or 0):
            return convert({}, self.spec.type)
        raw = await read_bytes(self.request)
        try:
            return decode(raw, self.spec.type)
        except Malformed as exc:
            raise Problem(400, f"the body is not valid JSON: {exc}", code="bad_json") from None

    async def form(self) -> FormData:
        """The posted form as it came (a route that reads some of it first)."""
        try:
            return await self.request.form(max_files=0, max_fields=50)
        except Exception as exc:  # the multipart parser raises its own types
            raise Problem(400, f"the form could not be read: {exc}", code="bad_form") from None


Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Body[B]], Awaitable[Response]]

# endpoint -> the body it takes: the registry the OpenAPI document reads
BODIES: dict[Callable[..., Any], BodySpec[Any]] = {}


def takes(
    tp: type[B], *, required: bool = True, media: tuple[str, ...] = (JSON,)
) -> Callable[[Handler[B]], Endpoint]:
    """Declare the schema a route's body is decoded with (and published as)."""
    spec = BodySpec(tp, required, media)

    def wrap(handler: Handler[B]) -> Endpoint:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            return await handler(request, Body(request, spec))

        BODIES[endpoint] = spec
        return endpoint

    return wrap


def body_of(endpoint: Callable[..., Any]) -> BodySpec[Any] | None:
    return BODIES.get(endpoint)


# -- path parameters -----------------------------------------------------------------------

# every path parameter of the API, by name: its type (the check, and its
# schema in the document) and the field a refusal names
PATH: Final[dict[str, tuple[Any, str]]] = {
    "agent_id": (AgentId, "id"),
    "name": (QueueName, "name"),
    "customer_id": (CustomerId, "id"),
    "call_id": (CallId, "call_id"),
    "work_id": (WorkId, "work_id"),
    "channel": (ChannelName, "channel"),
    "center": (CenterId, "center"),
    "template_id": (Name, "id"),
    "token": (LinkToken, "token"),
}


def path_param(request: Request, name: str) -> str:
    """A path parameter, checked by its type (422 naming its field)."""
    tp, field = PATH[name]
    try:
        return str(value(request.path_params[name], tp, field))
    except Invalid as exc:
        raise invalid(exc) from None


# -- the public routes (no token: the contact form, the status page, the survey) ------------


def wants_json(request: Request) -> bool:
    """Whether a public page's client asked for JSON rather than the HTML page."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def rate_limited(request: Request, bucket: str, what: str = "messages") -> None:
    """A public route's per-address limit (the center's ``[intake.forms]``
    rate), counted in Redis per `bucket`: 429 with Retry-After over it."""
    ctx = ctx_of(request)
    cfg = ctx.center.intake
    if cfg.form_rate_limit <= 0:
        return
    ip = request.client.host if request.client else "unknown"
    allowed, retry = await rate_hit(ctx.store, f"{bucket}:{ip}", cfg.form_rate_window, cfg.form_rate_limit)
    if not allowed:
        raise Problem(
            429,
            f"too many {what} from your address; try again in {retry} seconds",
            code="rate_limited",
            headers={"Retry-After": str(retry)},
        )
