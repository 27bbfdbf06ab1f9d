"""The published OpenAPI 3.1 description of the HTTP API (`GET /openapi.json`).

The document is generated, never written beside the code:

* paths, path parameters and methods come from the application's own
  routes (every `starlette.routing.Route`), so a route cannot go missing;
* a path parameter's schema is its type in `presence.http.common.PATH`,
  the one the handlers check it with;
* a request body is the schema its handler decodes with (`takes`, read
  back from `presence.http.common.BODIES`), with its media types;
* every schema under ``components`` is generated from the msgspec Structs
  of `presence.schema` (`msgspec.json.schema_components`), required fields
  and constraints included.

What a route cannot say about itself (summary, who may call it, its
answers) is kept here in `OPERATIONS`, keyed by ``(METHOD, path)``; other
modules may add their own entries with `describe()`. A route with no entry
is still published, with a generic description, and `undocumented()` names
it (a unit test fails on it).

Every refusal is ``application/problem+json`` (`presence.problems`); every
operation documents the problems it can answer, including 503 when Redis is
unreachable, so a client generated from this file knows them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from presence.http.common import JSON, PATH, body_of
from presence.problems import MEDIA_TYPE as PROBLEM
from presence.problems import TITLES
from presence.schema import admin, answers, cases, channels, work
from presence.schema.common import IdempotencyKey, Shape

HTML: Final = "text/html"
COMPONENTS: Final = "#/components/schemas/{name}"

# An answer's schema: a Struct of presence.schema (published under
# components), a JSON Schema written out (for what has no Struct: reports,
# this document), or None for no body.
Answer = type | dict[str, Any] | None


def ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENTS.format(name=name)}


# -- operations -------------------------------------------------------------------

OBJECT: Final[dict[str, Any]] = {"type": "object"}
# What a write through a channel or case route can refuse.
WRITE_PROBLEMS: Final = (400, 404, 409, 413, 415, 422)

ADMIN: Final = ("supervisor", "service")
ANY: Final = ("agent", "supervisor", "service")
INTAKE: Final = ("service", "supervisor")


@dataclass(frozen=True, slots=True)
class Op:
    """What a route cannot say about itself."""

    summary: str
    # Roles whose bearer token is accepted; () means no token is needed.
    roles: tuple[str, ...] = ()
    # (status, schema) of the success answer.
    ok: tuple[int, Answer] = (200, None)
    also_ok: Mapping[int, Answer] = field(default_factory=dict)
    # Problems beyond those every operation of its kind can answer.
    problems: tuple[int, ...] = ()
    # the media types of the success answers (text/html: a page)
    media: tuple[str, ...] | str = JSON
    # request headers: name -> (type, description)
    headers: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    description: str = ""


OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/healthz"): Op("Liveness: the process answers (does not touch Redis)", ok=(200, answers.Health)),
    ("GET", "/readyz"): Op(
        "Readiness: Redis answers and the event listener is subscribed",
        ok=(200, answers.Health),
        problems=(503,),
    ),
    ("GET", "/openapi.json"): Op("This document", ok=(200, OBJECT)),
    ("GET", "/api/v1/agents"): Op("List agents with their live view", ADMIN, ok=(200, admin.AgentList)),
    ("GET", "/api/v1/agents/{agent_id}"): Op(
        "One agent (an agent token may read only its own)", ANY, ok=(200, admin.AgentRead), problems=(404,)
    ),
    ("PUT", "/api/v1/agents/{agent_id}"): Op(
        "Create or replace an agent's profile",
        ADMIN,
        ok=(200, admin.Agent),
        also_ok={201: admin.Agent},
        problems=(400, 404, 409, 413, 415, 422),
    ),
    ("DELETE", "/api/v1/agents/{agent_id}"): Op(
        "Delete an agent (refused while it holds work)", ADMIN, ok=(204, None), problems=(404, 409, 422)
    ),
    ("GET", "/api/v1/queues"): Op("List queues", ANY, ok=(200, admin.QueueList)),
    ("GET", "/api/v1/queues/{name}"): Op("One queue", ANY, ok=(200, admin.Queue), problems=(404,)),
    ("PUT", "/api/v1/queues/{name}"): Op(
        "Create or replace a queue (overflow and skill relaxation included)",
        ADMIN,
        ok=(200, admin.Queue),
        also_ok={201: admin.Queue},
        problems=(400, 413, 415, 422),
    ),
    ("DELETE", "/api/v1/queues/{name}"): Op(
        "Delete a queue (refused while items wait in it)", ADMIN, ok=(204, None), problems=(404, 409, 422)
    ),
    ("GET", "/api/v1/queues/{name}/waiting"): Op(
        "The items waiting in a queue, in routing order (the first 500), with channel, "
        "priority, arrival, subject and customer",
        ADMIN,
        ok=(200, admin.WaitingList),
        problems=(404,),
    ),
    ("GET", "/api/v1/statuses"): Op("The center's presence statuses", ANY, ok=(200, admin.StatusList)),
    ("GET", "/api/v1/channels"): Op("The center's channels", ANY, ok=(200, admin.ChannelList)),
    ("POST", "/api/v1/work"): Op(
        "Submit a work item (idempotent with an Idempotency-Key header)",
        INTAKE,
        ok=(201, work.WorkCreated),
        also_ok={200: work.WorkCreated},
        problems=(400, 409, 413, 415, 422),
        headers={
            "Idempotency-Key": (
                IdempotencyKey,
                "a retry with the same key and the same body answers the first item (200); the same "
                "key with a different body is refused (422 naming Idempotency-Key). Kept a day.",
            )
        },
    ),
    ("POST", "/api/v1/work:batch"): Op(
        "Submit up to 500 work items in one request (each validated and idempotent on its own)",
        INTAKE,
        ok=(207, work.BatchResults),
        problems=(400, 413, 415),
    ),
    ("GET", "/api/v1/work/{work_id}"): Op(
        "One work item with its history (an agent token: only its own)",
        ANY,
        ok=(200, work.Work),
        problems=(404,),
    ),
    ("POST", "/api/v1/work/{work_id}/cancel"): Op(
        "Cancel (abandon) a work item",
        INTAKE,
        ok=(200, work.WorkState),
        problems=(400, 404, 409, 413, 415, 422),
    ),
    # -- cases and channels (presence/http/cases.py, presence/http/channels/) --
    ("POST", "/api/v1/work/{work_id}/comments"): Op(
        "Add a note to an item's timeline (an agent: only on its own items)",
        ANY,
        ok=(201, cases.NoteAnswer),
        problems=WRITE_PROBLEMS,
    ),
    ("GET", "/api/v1/work/{work_id}/comments"): Op(
        "An item's notes (an agent: only its own items)", ANY, ok=(200, cases.Comments), problems=(404,)
    ),
    ("POST", "/api/v1/work/{work_id}/replies"): Op(
        "Reply to the customer (only the agent holding the item); sent on as the `reply` webhook",
        ("agent",),
        ok=(201, cases.ReplyAnswer),
        problems=WRITE_PROBLEMS,
        description="A second reply to the customer's same message is refused (409, field `confirm`) "
        "unless `confirm` is true.",
    ),
    ("GET", "/api/v1/work/{work_id}/replies"): Op(
        "The replies sent to the customer on an item's case (an agent: only its own items)",
        ANY,
        ok=(200, cases.Replies),
        problems=(404, 422),
    ),
    ("POST", "/api/v1/work/{work_id}/status"): Op(
        "Set a case's status (one of the center's [cases] statuses)",
        ANY,
        ok=(200, cases.Case),
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/transfer"): Op(
        "Hand an item to another agent or queue (an agent: only its own)",
        ANY,
        ok=(200, work.WorkState),
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/reassign"): Op(
        "Move an item to another agent by force",
        ADMIN,
        ok=(200, work.WorkState),
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/push"): Op(
        "Offer an item to a named agent",
        ADMIN,
        ok=(200, work.WorkState),
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/pull"): Op(
        "Take an item back to its queue (no body)",
        ADMIN,
        ok=(200, work.WorkState),
        problems=WRITE_PROBLEMS,
    ),
    ("PUT", "/api/v1/customers/{customer_id}"): Op(
        "Create or replace a customer",
        ADMIN,
        ok=(200, cases.Customer),
        also_ok={201: cases.Customer},
        problems=WRITE_PROBLEMS,
    ),
    ("GET", "/api/v1/customers/{customer_id}"): Op(
        "One customer", ANY, ok=(200, cases.Customer), problems=(404,)
    ),
    ("GET", "/api/v1/customers/{customer_id}/cases"): Op(
        "A customer's cases, newest first (the screen pop's history), paged",
        ANY,
        ok=(200, cases.CustomerCases),
        problems=(404, 422),
        description="Query: limit (1-100, default 10), before (the previous page's `next`).",
    ),
    ("GET", "/api/v1/webhooks"): Op(
        "Configured webhooks and their delivery state", ADMIN, ok=(200, cases.Webhooks)
    ),
    ("POST", "/api/v1/channels/voice/calls"): Op(
        "A call arrived (from the telephony system)",
        INTAKE,
        ok=(201, channels.IntakeAnswer),
        also_ok={200: channels.IntakeAnswer},
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/channels/voice/calls/{call_id}/hangup"): Op(
        "A call ended", INTAKE, ok=(200, channels.HangupAnswer), problems=WRITE_PROBLEMS
    ),
    ("POST", "/api/v1/channels/email/inbound"): Op(
        "An inbound email (threaded into its case)",
        INTAKE,
        ok=(201, channels.IntakeAnswer),
        also_ok={200: channels.IntakeAnswer},
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/channels/{channel}/messages"): Op(
        "An inbound chat / messaging message (threaded into its conversation)",
        INTAKE,
        ok=(201, channels.IntakeAnswer),
        also_ok={200: channels.IntakeAnswer},
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/forms/case"): Op(
        "A public web form opens a case (no token; rate-limited per address)",
        ok=(201, channels.FormAnswer),
        also_ok={200: channels.FormAnswer},
        problems=(400, 411, 413, 415, 422, 429, 503),
        media=(HTML, JSON),
        description="The answer is a thank-you page, or JSON with `Accept: application/json`. "
        "A post that fills the page's hidden spam trap is thanked (200) and dropped.",
    ),
    ("POST", "/forms/{center}/case"): Op(
        "A center's public web form opens a case in that center (as POST /forms/case)",
        ok=(201, channels.FormAnswer),
        also_ok={200: channels.FormAnswer},
        problems=(400, 404, 411, 413, 415, 422, 429, 503),
        media=(HTML, JSON),
        description="For a center other than the default one: its own contact page posts here. "
        "Its categories, rate limit and status links are the center's; an unknown center answers 404.",
    ),
    ("GET", "/contact"): Op("The public contact form (HTML)", ok=(200, None), problems=(404,), media=HTML),
    ("GET", "/agent"): Op("The agent panel (HTML)", ok=(200, None), problems=(404,), media=HTML),
    ("GET", "/wallboard"): Op("The wallboard (HTML)", ok=(200, None), problems=(404,), media=HTML),
    ("GET", "/"): Op("Redirects to the wallboard", ok=(307, None), media=HTML),
}


def describe(method: str, path: str, op: Op) -> None:
    """Document a route added by another module (call at import time)."""
    OPERATIONS[(method.upper(), path)] = op


def route(method: str, path: str, endpoint: Callable[..., Any], op: Op) -> Route:
    """The route of one method of `path`, documented as `op` (`describe`):
    the method and path are written once, for the route and its document."""
    describe(method, path, op)
    return Route(path, endpoint, methods=[method])


# -- generation ---------------------------------------------------------------------

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def endpoints_of(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (METHOD, path, endpoint) an HTTP route of the app answers (HEAD left out)."""
    for r in routes:
        if isinstance(r, Route):
            path = _PARAM.sub(r"{\1}", prefix + r.path)
            for m in sorted(r.methods or {"GET"}):
                if m != "HEAD":
                    yield m, path, r.endpoint
        elif isinstance(r, Mount) and r.routes:
            yield from endpoints_of(r.routes, prefix + r.path)


def routes_of(routes: Iterable[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """Every (METHOD, path) an HTTP route of the app answers (HEAD left out)."""
    return [(m, p) for m, p, _ in endpoints_of(routes, prefix)]


def undocumented(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    return [k for k in routes_of(routes) if k not in OPERATIONS]


def _subclasses(cls: type[Shape]) -> list[type[Shape]]:
    out: list[type[Shape]] = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


class _Schemas:
    """The Structs a document refers to, and their components, made in one go."""

    def __init__(self) -> None:
        self.types: list[Any] = [answers.Problem]

    def use(self, tp: Any) -> dict[str, Any]:
        """A reference to `tp`'s component (filled in by `components`)."""
        if isinstance(tp, dict):
            return tp
        self.types.append(tp)
        return {"$struct": tp}

    def components(self, doc: Any) -> dict[str, Any]:
        refs, comps = msgspec.json.schema_components(self.types, ref_template=COMPONENTS)
        by_type = dict(zip(self.types, refs, strict=True))
        # every component's own rules, nested ones too (a center file's queues)
        shapes = {tp.__name__: tp for tp in _subclasses(Shape)}
        for name, comp in comps.items():
            tp = shapes.get(name)
            if tp is not None and (extra := tp.json_schema_extra()):
                comp.update(extra)

        def fill(node: Any) -> Any:
            if isinstance(node, dict):
                if "$struct" in node:
                    return by_type[node["$struct"]]
                return {k: fill(v) for k, v in node.items()}
            if isinstance(node, list):
                return [fill(v) for v in node]
            return node

        doc.update(fill({k: v for k, v in doc.items()}))
        return dict(sorted(comps.items()))


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": TITLES.get(status, "Error"),
        "content": {PROBLEM: {"schema": ref("Problem")}},
    }


def _answer(status: int, schema: Answer, media: tuple[str, ...], schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"description": TITLES.get(status, "Success") if status >= 400 else "Success"}
    content: dict[str, Any] = {}
    for m in media:
        if m == JSON and schema is not None:
            content[m] = {"schema": schemas.use(schema)}
        elif m != JSON and (schema is not None or status == 200):
            # a page, or a non-JSON document (metrics)
            content[m] = {"schema": {"type": "string"}}
    if content:
        out["content"] = content
    return out


def _inline(tp: Any) -> dict[str, Any]:
    """A simple type's JSON Schema, inline (a path parameter's, a header's)."""
    schema: dict[str, Any] = msgspec.json.schema(tp)
    return schema


def operation(method: str, path: str, op: Op | None, endpoint: Any, schemas: _Schemas) -> dict[str, Any]:
    if op is None:
        op = Op(f"{method} {path} (not yet described)")
    media = (op.media,) if isinstance(op.media, str) else op.media
    params: list[dict[str, Any]] = []
    for p in _PARAM.findall(path):
        tp = PATH[p][0] if p in PATH else str
        params.append({"name": p, "in": "path", "required": True, "schema": _inline(tp)})
    params += [
        {"name": h, "in": "header", "required": False, "schema": _inline(tp), "description": d}
        for h, (tp, d) in op.headers.items()
    ]
    responses: dict[str, Any] = {str(op.ok[0]): _answer(op.ok[0], op.ok[1], media, schemas)}
    for status, schema in op.also_ok.items():
        responses[str(status)] = _answer(status, schema, media, schemas)
    statuses = set(op.problems)
    if op.roles:
        statuses |= {401, 403}
    if path.startswith("/api/"):
        # every API route reads Redis: an outage answers 503, never a hang
        statuses |= {503}
    if method != "GET" or path.startswith("/api/"):
        statuses |= {405}
    for status in sorted(statuses):
        responses[str(status)] = _problem(status)
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_') or 'root'}",
        "summary": op.summary,
        "responses": responses,
    }
    if op.roles:
        out["security"] = [{"bearer": []}]
        out["description"] = (op.description + " " if op.description else "") + (
            f"Needs a bearer token of role {' or '.join(op.roles)}."
        )
    elif op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    spec = body_of(endpoint)
    if spec is not None:
        out["requestBody"] = {
            "required": spec.required,
            "content": {m: {"schema": schemas.use(spec.type)} for m in spec.media},
        }
    return out


def request_body_types(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Any]:
    """(METHOD, path) -> the Struct its handler decodes its body with."""
    return {(m, p): spec.type for m, p, e in endpoints_of(routes) if (spec := body_of(e)) is not None}


def document(routes: Sequence[BaseRoute], version: str = "1") -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, endpoint in endpoints_of(routes):
        paths.setdefault(path, {})[method.lower()] = operation(
            method, path, OPERATIONS.get((method, path)), endpoint, schemas
        )
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "presence",
            "version": version,
            "description": "Agent presence and omni-channel routing. Websockets (/ws/agent, "
            "/ws/supervisor) are described in docs/protocol.md.",
        },
        "paths": paths,
    }
    components = schemas.components(doc)
    doc["components"] = {
        "schemas": components,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    }
    return doc


async def openapi_json(request: Request) -> Response:
    return Response(
        orjson.dumps(document(request.app.routes)), media_type=JSON, headers={"Cache-Control": "no-cache"}
    )


ROUTE: Final = Route("/openapi.json", openapi_json, methods=["GET"])
