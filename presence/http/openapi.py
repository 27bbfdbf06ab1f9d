"""The published OpenAPI 3.1 description of the HTTP API (`GET /openapi.json`).

The document is generated from the application's own routes: every
`starlette.routing.Route` contributes its path, path parameters and methods,
so a route cannot silently go missing. What a route cannot say about itself
(summary, who may call it, the request body, the answers) is kept here in
`OPERATIONS`, keyed by ``(METHOD, path)``; other modules may add their own
entries with `describe()`. A route with no entry is still published, with a
generic description, and `undocumented()` names it (a unit test fails on it).

Every refusal is ``application/problem+json`` (`presence.problems`); every
operation documents the problems it can answer, including 503 when Redis is
unreachable, so a client generated from this file knows them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from presence.center import PRIORITY_MAX, PRIORITY_MIN, STRATEGIES
from presence.problems import MEDIA_TYPE as PROBLEM
from presence.problems import TITLES

JSON: Final = "application/json"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"

# -- reusable schemas -----------------------------------------------------------

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "field": {"type": "string", "description": "the field that was wrong, when one was"},
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    },
    "AgentInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "must equal the id in the path"},
            "name": {"type": "string", "maxLength": 200},
            "capacity": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "skills": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "queues": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}},
            "extension": {"type": "string"},
        },
    },
    "Agent": {
        "type": "object",
        "required": ["id", "name", "capacity", "skills", "queues", "extension"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "capacity": {"type": "integer"},
            "skills": {"type": "object"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "extension": {"type": "string"},
            "live": {"type": ["object", "null"], "description": "the agent's live view"},
        },
    },
    "QueueInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "description": "must equal the name in the path"},
            "title": {"type": "string"},
            "strategy": {"enum": list(STRATEGIES)},
            "push_timeout": {"type": "number", "minimum": 0, "maximum": 86400},
            "auto_accept": {"type": "boolean"},
            "service_level_seconds": {"type": "number", "minimum": 0, "maximum": 86400},
            "service_level_target": {"type": "number", "minimum": 0, "maximum": 1},
            "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "wrapup_seconds": {"type": "number", "minimum": 0, "maximum": 86400},
        },
    },
    "Queue": {
        "type": "object",
        "required": ["name", "strategy", "push_timeout", "priority"],
        "properties": {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "strategy": {"type": "string"},
            "push_timeout": {"type": "number"},
            "auto_accept": {"type": "boolean"},
            "service_level_seconds": {"type": "number"},
            "service_level_target": {"type": "number"},
            "priority": {"type": "integer"},
            "wrapup_seconds": {"type": "number"},
        },
    },
    "WorkInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel", "queue", "skills"],
        "properties": {
            "channel": {"type": "string", "pattern": NAME_PATTERN},
            "queue": {"type": "string", "pattern": NAME_PATTERN},
            "priority": {"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX},
            "skills": {
                "type": "object",
                "description": "skill name to the minimum level the agent needs",
                "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 10},
            },
            "subject": {"type": "string", "maxLength": 1000},
            "customer": {
                "type": "object",
                "description": "id, name, phone, email and free fields (at most 64 KiB with payload)",
            },
            "payload": {"type": "object", "description": "carried to the agent as is"},
        },
    },
    "WorkCreated": {
        "type": "object",
        "required": ["id", "state", "queue", "channel"],
        "properties": {
            "id": {"type": "string"},
            "state": {"type": "string"},
            "queue": {"type": "string"},
            "channel": {"type": "string"},
            "created_at": {"type": ["number", "null"]},
        },
    },
    "Work": {
        "type": "object",
        "required": ["id", "work_id", "state", "queue", "channel"],
        "properties": {
            "id": {"type": "string"},
            "work_id": {"type": "string"},
            "state": {"type": "string"},
            "queue": {"type": "string"},
            "channel": {"type": "string"},
            "priority": {"type": "integer"},
            "agent_id": {"type": ["string", "null"]},
            "history": {"type": "array"},
        },
    },
    "CancelInput": {
        "type": "object",
        "properties": {"reason": {"type": "string", "maxLength": 200}},
    },
    "WorkState": {
        "type": "object",
        "required": ["id", "state"],
        "properties": {"id": {"type": "string"}, "state": {"type": "string"}},
    },
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(key: str, item: str) -> dict[str, Any]:
    """An object ``{key: [item...]}``, the shape of every list answer."""
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": ref(item) if item in SCHEMAS else {}}},
    }


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
    # (status, schema) of the success answer; schema None means no body.
    ok: tuple[int, dict[str, Any] | None] = (200, None)
    also_ok: Mapping[int, dict[str, Any] | None] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    body_required: bool = True
    # Problems beyond those every operation of its kind can answer.
    problems: tuple[int, ...] = ()
    media: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/healthz"): Op("Liveness: the process answers (does not touch Redis)", ok=(200, ref("Status"))),
    ("GET", "/readyz"): Op(
        "Readiness: Redis answers and the event listener is subscribed",
        ok=(200, ref("Status")),
        problems=(503,),
    ),
    ("GET", "/openapi.json"): Op("This document", ok=(200, {"type": "object"})),
    ("GET", "/api/v1/agents"): Op(
        "List agents with their live view", ADMIN, ok=(200, list_of("agents", "Agent"))
    ),
    ("GET", "/api/v1/agents/{agent_id}"): Op(
        "One agent (an agent token may read only its own)", ANY, ok=(200, ref("Agent")), problems=(404,)
    ),
    ("PUT", "/api/v1/agents/{agent_id}"): Op(
        "Create or replace an agent's profile",
        ADMIN,
        ok=(200, ref("Agent")),
        also_ok={201: ref("Agent")},
        body=ref("AgentInput"),
        problems=(400, 404, 409, 413, 415, 422),
    ),
    ("DELETE", "/api/v1/agents/{agent_id}"): Op(
        "Delete an agent (refused while it holds work)", ADMIN, ok=(204, None), problems=(404, 409, 422)
    ),
    ("GET", "/api/v1/queues"): Op("List queues", ANY, ok=(200, list_of("queues", "Queue"))),
    ("GET", "/api/v1/queues/{name}"): Op("One queue", ANY, ok=(200, ref("Queue")), problems=(404,)),
    ("PUT", "/api/v1/queues/{name}"): Op(
        "Create or replace a queue",
        ADMIN,
        ok=(200, ref("Queue")),
        also_ok={201: ref("Queue")},
        body=ref("QueueInput"),
        problems=(400, 413, 415, 422),
    ),
    ("DELETE", "/api/v1/queues/{name}"): Op(
        "Delete a queue (refused while items wait in it)", ADMIN, ok=(204, None), problems=(404, 409, 422)
    ),
    ("GET", "/api/v1/statuses"): Op("The center's presence statuses", ANY, ok=(200, list_of("statuses", ""))),
    ("GET", "/api/v1/channels"): Op("The center's channels", ANY, ok=(200, list_of("channels", ""))),
    ("POST", "/api/v1/work"): Op(
        "Submit a work item (idempotent with an Idempotency-Key header)",
        INTAKE,
        ok=(201, ref("WorkCreated")),
        also_ok={200: ref("WorkCreated")},
        body=ref("WorkInput"),
        problems=(400, 413, 415, 422),
        headers={"Idempotency-Key": "a retry with the same key answers the first item (200)"},
    ),
    ("POST", "/api/v1/work:batch"): Op(
        "Submit up to 500 work items in one request (each validated and idempotent on its own)",
        INTAKE,
        ok=(
            207,
            {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": {
                        "type": "array",
                        "description": "one result per item, in order: status 201 (created), 200 "
                        "(idempotent repeat) or 4xx with a problem naming items[i].<field>",
                        "items": {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": {"type": "integer"},
                                "id": {"type": "string"},
                                "state": {"type": "string"},
                                "queue": {"type": "string"},
                                "channel": {"type": "string"},
                                "problem": ref("Problem"),
                            },
                        },
                    }
                },
            },
        ),
        body={
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 500,
                    "description": "bodies of POST /api/v1/work, each with an optional idempotency_key",
                    "items": {"type": "object"},
                }
            },
        },
        problems=(400, 413, 415),
    ),
    ("GET", "/api/v1/work/{work_id}"): Op(
        "One work item with its history (an agent token: only its own)",
        ANY,
        ok=(200, ref("Work")),
        problems=(404,),
    ),
    ("POST", "/api/v1/work/{work_id}/cancel"): Op(
        "Cancel (abandon) a work item",
        INTAKE,
        ok=(200, ref("WorkState")),
        body=ref("CancelInput"),
        body_required=False,
        problems=(400, 404, 409, 413, 415, 422),
    ),
    # -- cases and channels (presence/http/cases.py, presence/http/channels/) --
    ("POST", "/api/v1/work/{work_id}/comments"): Op(
        "Add a note to an item's timeline (an agent: only on its own items)",
        ANY,
        ok=(201, OBJECT),
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("GET", "/api/v1/work/{work_id}/comments"): Op(
        "An item's notes (an agent: only its own items)", ANY, ok=(200, OBJECT), problems=(404,)
    ),
    ("POST", "/api/v1/work/{work_id}/status"): Op(
        "Set a case's status (open, pending, solved ...)",
        ANY,
        ok=(200, OBJECT),
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/transfer"): Op(
        "Hand an item to another agent or queue (an agent: only its own)",
        ANY,
        ok=(200, ref("WorkState")),
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/reassign"): Op(
        "Move an item to another agent by force",
        ADMIN,
        ok=(200, ref("WorkState")),
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/push"): Op(
        "Offer an item to a named agent",
        ADMIN,
        ok=(200, ref("WorkState")),
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/work/{work_id}/pull"): Op(
        "Take an item back to its queue",
        ADMIN,
        ok=(200, ref("WorkState")),
        body=OBJECT,
        body_required=False,
        problems=WRITE_PROBLEMS,
    ),
    ("PUT", "/api/v1/customers/{customer_id}"): Op(
        "Create or replace a customer",
        ADMIN,
        ok=(200, OBJECT),
        also_ok={201: OBJECT},
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("GET", "/api/v1/customers/{customer_id}"): Op("One customer", ANY, ok=(200, OBJECT), problems=(404,)),
    ("GET", "/api/v1/webhooks"): Op("Configured webhooks and their delivery state", ADMIN, ok=(200, OBJECT)),
    ("POST", "/api/v1/channels/voice/calls"): Op(
        "A call arrived (from the telephony system)",
        INTAKE,
        ok=(201, OBJECT),
        also_ok={200: OBJECT},
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/channels/voice/calls/{call_id}/hangup"): Op(
        "A call ended", INTAKE, ok=(200, OBJECT), body=OBJECT, body_required=False, problems=WRITE_PROBLEMS
    ),
    ("POST", "/api/v1/channels/email/inbound"): Op(
        "An inbound email (threaded into its case)",
        INTAKE,
        ok=(201, OBJECT),
        also_ok={200: OBJECT},
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/api/v1/channels/{channel}/messages"): Op(
        "An inbound chat / messaging message (threaded into its conversation)",
        INTAKE,
        ok=(201, OBJECT),
        also_ok={200: OBJECT},
        body=OBJECT,
        problems=WRITE_PROBLEMS,
    ),
    ("POST", "/forms/case"): Op(
        "A public web form opens a case (no token; rate-limited per address)",
        ok=(201, None),
        body=None,
        problems=(400, 411, 413, 415, 422, 429, 503),
        media="text/html",
    ),
    ("GET", "/contact"): Op(
        "The public contact form (HTML)", ok=(200, None), problems=(404,), media="text/html"
    ),
    ("GET", "/agent"): Op("The agent panel (HTML)", ok=(200, None), problems=(404,), media="text/html"),
    ("GET", "/wallboard"): Op("The wallboard (HTML)", ok=(200, None), problems=(404,), media="text/html"),
    ("GET", "/"): Op("Redirects to the wallboard", ok=(307, None), media="text/html"),
}


def describe(method: str, path: str, op: Op) -> None:
    """Document a route added by another module (call at import time)."""
    OPERATIONS[(method.upper(), path)] = op


# -- generation ---------------------------------------------------------------------

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


def routes_of(routes: Iterable[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
    """Every (METHOD, path) an HTTP route of the app answers (HEAD left out)."""
    out: list[tuple[str, str]] = []
    for r in routes:
        if isinstance(r, Route):
            path = _PARAM.sub(r"{\1}", prefix + r.path)
            for m in sorted(r.methods or {"GET"}):
                if m != "HEAD":
                    out.append((m, path))
        elif isinstance(r, Mount) and r.routes:
            out.extend(routes_of(r.routes, prefix + r.path))
    return out


def undocumented(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    return [k for k in routes_of(routes) if k not in OPERATIONS]


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": TITLES.get(status, "Error"),
        "content": {PROBLEM: {"schema": ref("Problem")}},
    }


def _answer(status: int, schema: dict[str, Any] | None, media: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": TITLES.get(status, "Success") if status >= 400 else "Success"}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    elif media != JSON and status == 200:
        out["content"] = {media: {"schema": {"type": "string"}}}
    return out


def operation(method: str, path: str, op: Op | None) -> dict[str, Any]:
    if op is None:
        op = Op(f"{method} {path} (not yet described)")
    params: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in _PARAM.findall(path)
    ]
    params += [
        {"name": h, "in": "header", "required": False, "schema": {"type": "string"}, "description": d}
        for h, d in op.headers.items()
    ]
    responses: dict[str, Any] = {str(op.ok[0]): _answer(op.ok[0], op.ok[1], op.media)}
    for status, schema in op.also_ok.items():
        responses[str(status)] = _answer(status, schema, op.media)
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
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {JSON: {"schema": op.body}}}
    return out


def document(routes: Sequence[BaseRoute], version: str = "1") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes_of(routes):
        paths.setdefault(path, {})[method.lower()] = operation(method, path, OPERATIONS.get((method, path)))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "presence",
            "version": version,
            "description": "Agent presence and omni-channel routing. Websockets (/ws/agent, "
            "/ws/supervisor) are described in docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


async def openapi_json(request: Request) -> Response:
    return Response(
        orjson.dumps(document(request.app.routes)), media_type=JSON, headers={"Cache-Control": "no-cache"}
    )


ROUTE: Final = Route("/openapi.json", openapi_json, methods=["GET"])
