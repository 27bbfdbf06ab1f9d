"""The HTTP side of cases: comments, status, transfer and the supervisor's
moves of a work item, the customer directory, and the webhooks' backlog.

Role checks: an agent may act only on items it holds (assigned or in
wrap-up); a supervisor or a service may act on any item.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.auth import Claims
from presence.center import NAME_RE
from presence.http.channels.common import invalid, known_fields, obj, text
from presence.http.common import ADMIN, ANY, ctx_of, json, read_json, require
from presence.problems import Problem
from presence.services import cases
from presence.services.cases import NOTE_MAX
from presence.store import cases as case_store

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def _holder(claims: Claims) -> str:
    """The agent who must hold the item ("" for supervisors and services)."""
    return claims.sub if claims.role == "agent" else ""


def _by(claims: Claims) -> str:
    return f"{claims.role}:{claims.sub}"


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    body = obj(await read_json(request))
    known_fields(body, allowed)
    return body


async def add_comment(request: Request) -> Response:
    claims = require(request, *ANY)
    wid = request.path_params["work_id"]
    body = await _body(request, {"text"})
    words = text(body, "text", required=True, max_len=NOTE_MAX, what="the note's text")
    if not words.strip():
        raise invalid("text", "must not be empty")
    note = await case_store.add_note(ctx_of(request).store, wid, claims.sub, words, _holder(claims))
    return json(note, status=201)


async def list_comments(request: Request) -> Response:
    claims = require(request, *ANY)
    wid = request.path_params["work_id"]
    store = ctx_of(request).store
    item = await store.get_work(wid, history=False)
    if item is None:
        raise Problem(404, f"no work item {wid}", code="not_found")
    if claims.role == "agent" and item.get("agent_id") != claims.sub:
        raise Problem(403, "an agent may only read the notes of its own work items", code="forbidden")
    return json({"work_id": wid, "comments": await case_store.comments(store, wid)})


async def set_status(request: Request) -> Response:
    claims = require(request, *ANY)
    wid = request.path_params["work_id"]
    body = await _body(request, {"status"})
    status = text(body, "status", required=True, max_len=64, what="a case status")
    store = ctx_of(request).store
    await case_store.set_status(store, wid, status, _by(claims), _holder(claims))
    return json(await case_store.get_case(store, wid, timeline=False))


async def _move(request: Request, mode: str, claims: Claims, **kw: Any) -> Response:
    ctx = ctx_of(request)
    wid = request.path_params["work_id"]
    state = await cases.move(ctx.store, ctx.dispatcher, wid, mode, _by(claims), **kw)
    return json({"id": wid, "state": state})


def _agent_id(body: dict[str, Any], name: str, required: bool = True) -> str:
    v = text(body, name, required=required, max_len=64, what="an agent id")
    if v and not NAME_RE.match(v):
        raise invalid(name, "is not a valid agent id")
    return v


async def transfer(request: Request) -> Response:
    claims = require(request, *ANY)
    body = await _body(request, {"to_agent", "to_queue", "note"})
    to_agent = _agent_id(body, "to_agent", required=False)
    to_queue = text(body, "to_queue", max_len=64, what="a queue name")
    if bool(to_agent) == bool(to_queue):
        raise invalid("to_agent", "or to_queue is required (exactly one of them)")
    note = text(body, "note", max_len=NOTE_MAX, what="a handoff note")
    return await _move(
        request,
        "transfer",
        claims,
        holder_only=_holder(claims),
        to_agent=to_agent,
        to_queue=to_queue,
        note=note,
    )


async def reassign(request: Request) -> Response:
    claims = require(request, *ADMIN)
    body = await _body(request, {"agent_id", "note"})
    return await _move(
        request,
        "reassign",
        claims,
        to_agent=_agent_id(body, "agent_id"),
        note=text(body, "note", max_len=NOTE_MAX, what="a handoff note"),
    )


async def push(request: Request) -> Response:
    claims = require(request, *ADMIN)
    body = await _body(request, {"agent_id"})
    return await _move(request, "push", claims, to_agent=_agent_id(body, "agent_id"))


async def pull(request: Request) -> Response:
    claims = require(request, *ADMIN)
    return await _move(request, "pull", claims)


# -- customer directory ------------------------------------------------------------

CUSTOMER_FIELDS = {"name", "phones", "emails", "company", "tier", "language", "notes", "attributes"}


def parse_customer(body: dict[str, Any]) -> dict[str, Any]:
    known_fields(body, CUSTOMER_FIELDS)
    out: dict[str, Any] = {}
    for f in ("name", "company", "tier", "language"):
        if f in body:
            out[f] = text(body, f, max_len=200)
    if "notes" in body:
        out["notes"] = text(body, "notes", max_len=4000)
    phones, emails = body.get("phones", []), body.get("emails", [])
    if not isinstance(phones, list) or len(phones) > 20:
        raise invalid("phones", "must be a list of at most 20 phone numbers")
    if not isinstance(emails, list) or len(emails) > 20:
        raise invalid("emails", "must be a list of at most 20 email addresses")
    out["phones"] = []
    for i, p in enumerate(phones):
        n = case_store.normalise_phone(p) if isinstance(p, str) else ""
        if not 3 <= len(n) <= 32:
            raise invalid(f"phones[{i}]", "must be a phone number")
        out["phones"].append(n)
    out["emails"] = []
    for i, e in enumerate(emails):
        if not isinstance(e, str) or not EMAIL_RE.match(e.strip()) or len(e) > 254:
            raise invalid(f"emails[{i}]", "must be an email address")
        out["emails"].append(e.strip().lower())
    attrs = body.get("attributes", {})
    if not isinstance(attrs, dict) or len(str(attrs)) > 8000:
        raise invalid("attributes", "must be an object of at most 8000 characters")
    out["attributes"] = attrs
    return out


async def put_customer(request: Request) -> Response:
    require(request, *ADMIN)
    cid = request.path_params["customer_id"]
    if not NAME_RE.match(cid):
        raise invalid("id", "must be 1-64 letters, digits or _ . @ -")
    profile = parse_customer(obj(await read_json(request)))
    store = ctx_of(request).store
    outcome = await case_store.put_customer(store, cid, profile)
    return json(await case_store.get_customer(store, cid), status=201 if outcome == "created" else 200)


async def get_customer(request: Request) -> Response:
    require(request, *ANY)
    cid = request.path_params["customer_id"]
    found = await case_store.get_customer(ctx_of(request).store, cid)
    if found is None:
        raise Problem(404, f"no customer {cid}", code="not_found")
    return json(found)


async def webhooks(request: Request) -> Response:
    require(request, *ADMIN)
    deliverer = ctx_of(request).webhooks
    return json({"webhooks": await deliverer.status() if deliverer is not None else []})


ROUTES = [
    Route("/api/v1/work/{work_id}/comments", add_comment, methods=["POST"]),
    Route("/api/v1/work/{work_id}/comments", list_comments, methods=["GET"]),
    Route("/api/v1/work/{work_id}/status", set_status, methods=["POST"]),
    Route("/api/v1/work/{work_id}/transfer", transfer, methods=["POST"]),
    Route("/api/v1/work/{work_id}/reassign", reassign, methods=["POST"]),
    Route("/api/v1/work/{work_id}/push", push, methods=["POST"]),
    Route("/api/v1/work/{work_id}/pull", pull, methods=["POST"]),
    Route("/api/v1/customers/{customer_id}", put_customer, methods=["PUT"]),
    Route("/api/v1/customers/{customer_id}", get_customer, methods=["GET"]),
    Route("/api/v1/webhooks", webhooks, methods=["GET"]),
]
