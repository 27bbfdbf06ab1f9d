"""The HTTP side of cases: comments, status, transfer and the supervisor's
moves of a work item, the customer directory, and the webhooks' backlog.

Role checks: an agent may act only on items it holds (assigned or in
wrap-up); a supervisor or a service may act on any item.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from presence.auth import Claims
from presence.http.common import ADMIN, ANY, Body, ctx_of, invalid, json, path_param, require, takes
from presence.problems import Problem
from presence.schema import Invalid, value
from presence.schema.cases import (
    CaseStatusInput,
    CommentInput,
    Cursor,
    CustomerInput,
    PageLimit,
    PushInput,
    ReassignInput,
    ReplyInput,
    TransferInput,
)
from presence.services import cases
from presence.store import Store
from presence.store import cases as case_store


def _holder(claims: Claims) -> str:
    """The agent who must hold the item ("" for supervisors and services)."""
    return claims.sub if claims.role == "agent" else ""


def _by(claims: Claims) -> str:
    return f"{claims.role}:{claims.sub}"


@takes(CommentInput)
async def add_comment(request: Request, body: Body[CommentInput]) -> Response:
    claims = await require(request, *ANY)
    wid = request.path_params["work_id"]
    words = (await body()).text
    note = await case_store.add_note(ctx_of(request).store, wid, claims.sub, words, _holder(claims))
    return json(note, status=201)


async def _readable(request: Request, claims: Claims, wid: str, what: str) -> Store:
    """The store, once item `wid` exists (404) and, for an agent, is its own
    (403: an agent may read only the `what` of its own items)."""
    store = ctx_of(request).store
    item = await store.get_work(wid, history=False)
    if item is None:
        raise Problem(404, f"no work item {wid}", code="not_found")
    if claims.role == "agent" and item.get("agent_id") != claims.sub:
        raise Problem(403, f"an agent may only read the {what} of its own work items", code="forbidden")
    return store


async def list_comments(request: Request) -> Response:
    claims = await require(request, *ANY)
    wid = request.path_params["work_id"]
    store = await _readable(request, claims, wid, "notes")
    return json({"work_id": wid, "comments": await case_store.comments(store, wid)})


@takes(ReplyInput)
async def add_reply(request: Request, body: Body[ReplyInput]) -> Response:
    claims = await require(request, *ANY)
    wid = path_param(request, "work_id")
    if claims.role != "agent":
        raise Problem(403, "only the agent holding the item may reply to the customer", code="forbidden")
    r = await body()
    sent = await case_store.reply(ctx_of(request).store, wid, claims.sub, r.text, confirm=r.confirm)
    return json(sent, status=201)


async def list_replies(request: Request) -> Response:
    claims = await require(request, *ANY)
    wid = path_param(request, "work_id")
    store = await _readable(request, claims, wid, "replies")
    return json({"work_id": wid, "replies": await case_store.replies(store, wid)})


@takes(CaseStatusInput)
async def set_status(request: Request, body: Body[CaseStatusInput]) -> Response:
    claims = await require(request, *ANY)
    wid = request.path_params["work_id"]
    status = (await body()).status
    store = ctx_of(request).store
    await case_store.set_status(store, wid, status, _by(claims), _holder(claims))
    return json(await case_store.get_case(store, wid, timeline=False))


async def _move(request: Request, mode: str, claims: Claims, **kw: Any) -> Response:
    ctx = ctx_of(request)
    wid = request.path_params["work_id"]
    state = await cases.move(ctx.store, ctx.dispatcher, wid, mode, _by(claims), **kw)
    return json({"id": wid, "state": state})


@takes(TransferInput)
async def transfer(request: Request, body: Body[TransferInput]) -> Response:
    claims = await require(request, *ANY)
    t = await body()
    return await _move(
        request,
        "transfer",
        claims,
        holder_only=_holder(claims),
        to_agent=t.to_agent or "",
        to_queue=t.to_queue or "",
        note=t.note or "",
    )


@takes(ReassignInput)
async def reassign(request: Request, body: Body[ReassignInput]) -> Response:
    claims = await require(request, *ADMIN)
    r = await body()
    return await _move(request, "reassign", claims, to_agent=r.agent_id, note=r.note or "")


@takes(PushInput)
async def push(request: Request, body: Body[PushInput]) -> Response:
    claims = await require(request, *ADMIN)
    return await _move(request, "push", claims, to_agent=(await body()).agent_id)


async def pull(request: Request) -> Response:
    claims = await require(request, *ADMIN)
    return await _move(request, "pull", claims)


# -- customer directory ------------------------------------------------------------


def customer_profile(body: CustomerInput) -> dict[str, Any]:
    """What the directory keeps: the fields sent (a null one as ""), phones
    as the directory keys them, emails lowercased."""
    out: dict[str, Any] = {
        f: getattr(body, f) or ""
        for f in ("name", "company", "tier", "language", "notes")
        if getattr(body, f) is not UNSET
    }
    out["phones"] = [case_store.normalise_phone(p) for p in body.phones]
    out["emails"] = [e.strip().lower() for e in body.emails]
    out["attributes"] = body.attributes
    return out


@takes(CustomerInput)
async def put_customer(request: Request, body: Body[CustomerInput]) -> Response:
    await require(request, *ADMIN)
    cid = path_param(request, "customer_id")
    profile = customer_profile(await body())
    store = ctx_of(request).store
    outcome = await case_store.put_customer(store, cid, profile)
    return json(await case_store.get_customer(store, cid), status=201 if outcome == "created" else 200)


async def get_customer(request: Request) -> Response:
    await require(request, *ANY)
    cid = request.path_params["customer_id"]
    found = await case_store.get_customer(ctx_of(request).store, cid)
    if found is None:
        raise Problem(404, f"no customer {cid}", code="not_found")
    return json(found)


def _query_int(request: Request, name: str, tp: object, default: int | None) -> int | None:
    """A whole-number query parameter, checked by its schema type (422 naming it)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        number: object = int(raw) if raw.strip().lstrip("-").isdigit() else raw
        return int(value(number, tp, name))
    except Invalid as exc:
        raise invalid(exc) from None


async def customer_cases(request: Request) -> Response:
    """The customer's last cases (the screen pop's history), newest first, paged."""
    await require(request, *ANY)
    cid = path_param(request, "customer_id")
    limit = _query_int(request, "limit", PageLimit, 10) or 10
    before = _query_int(request, "before", Cursor, None)
    store = ctx_of(request).store
    if await case_store.get_customer(store, cid) is None:
        raise Problem(404, f"no customer {cid}", code="not_found")
    found, cursor = await case_store.customer_cases(store, cid, limit=limit, before=before)
    return json({"customer_id": cid, "cases": found, "next": cursor})


async def webhooks(request: Request) -> Response:
    await require(request, *ADMIN)
    deliverer = ctx_of(request).webhooks
    return json({"webhooks": await deliverer.status() if deliverer is not None else []})


ROUTES = [
    Route("/api/v1/work/{work_id}/comments", add_comment, methods=["POST"]),
    Route("/api/v1/work/{work_id}/comments", list_comments, methods=["GET"]),
    Route("/api/v1/work/{work_id}/replies", add_reply, methods=["POST"]),
    Route("/api/v1/work/{work_id}/replies", list_replies, methods=["GET"]),
    Route("/api/v1/work/{work_id}/status", set_status, methods=["POST"]),
    Route("/api/v1/work/{work_id}/transfer", transfer, methods=["POST"]),
    Route("/api/v1/work/{work_id}/reassign", reassign, methods=["POST"]),
    Route("/api/v1/work/{work_id}/push", push, methods=["POST"]),
    Route("/api/v1/work/{work_id}/pull", pull, methods=["POST"]),
    Route("/api/v1/customers/{customer_id}", put_customer, methods=["PUT"]),
    Route("/api/v1/customers/{customer_id}", get_customer, methods=["GET"]),
    Route("/api/v1/customers/{customer_id}/cases", customer_cases, methods=["GET"]),
    Route("/api/v1/webhooks", webhooks, methods=["GET"]),
]
